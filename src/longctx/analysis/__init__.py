"""Analyses of model behaviour over long contexts (attention-based retrieval, ranking quality).

``longctx.analysis.attention.analyze_attention`` imports torch and transformers; this package's
``__init__`` does not, so ``longctx.analysis.ranking`` stays cheap to import.
"""
