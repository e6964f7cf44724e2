"""Evaluation: prompts, scorers and the evaluation loop."""
