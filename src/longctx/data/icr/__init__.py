"""In-context-retrieval (ICR) training data: gold passages, hard negatives, all target formats.

::

    from longctx.data.icr import BuildConfig, build_icr_dataset

    config = BuildConfig(sources=[{"format": "hotpotqa", "path": "hotpot.json"}], max_tokens="1k")
    report = build_icr_dataset(config)  # writes train.jsonl, validation.jsonl, data_card.json

Negatives are retrieved from a corpus of 100-word passages (DPR, Karpukhin et al., 2020), false
negatives are relabelled (:mod:`longctx.data.icr.relabel`), gold depth is stratified over five
bins, and every prompt fits the token budget. Training code builds the user turn of a variant
with :func:`user_message` and reads its target from ``record["targets"][format]``.
"""

from longctx.data.icr.assemble import PROMPT_TEMPLATE, user_message
from longctx.data.icr.build import BuildReport, build_icr_dataset, split_of
from longctx.data.icr.config import SOURCE_FORMATS, BuildConfig, SourceSpec
from longctx.data.icr.relabel import Relabelled, fuzzy_score, relabel

__all__ = [
    "PROMPT_TEMPLATE",
    "SOURCE_FORMATS",
    "BuildConfig",
    "BuildReport",
    "Relabelled",
    "SourceSpec",
    "build_icr_dataset",
    "fuzzy_score",
    "relabel",
    "split_of",
    "user_message",
]
