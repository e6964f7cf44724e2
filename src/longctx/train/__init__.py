"""Training: target formats of each variant (SFT and GRPO) and the GRPO reward functions.

Submodules are imported explicitly (``longctx.train.targets``, ``longctx.train.rewards``); this
package imports nothing heavy on its own.
"""
