"""Readers of the upstream data formats, each registered under its format name.

Importing this package registers every reader in :data:`READERS`; use :func:`read_examples`::

    from longctx.data.readers import read_examples

    examples = read_examples("hotpotqa", "../shared/data/hotpotqa/hotpot_dev_distractor_400.json")

Formats: ``hotpotqa``, ``nq``, ``kilt``, ``longbench_v2``, ``loong``, ``leval``, ``synthetic``.
"""

# The built-in synthetic data registers its reader ("synthetic") on import.
from longctx.data import synthetic  # noqa: E402,F401  (after base: it registers itself)
from longctx.data.readers import (
    hotpotqa,
    infbench,  # noqa: F401  (InfiniteBench; registers the "infbench" reader)
    kilt,
    leval,
    longbench_v2,
    loong,
    nq,
)
from longctx.data.readers.base import READERS, read_examples, register_reader

__all__ = [
    "READERS",
    "read_examples",
    "register_reader",
    "hotpotqa",
    "kilt",
    "leval",
    "longbench_v2",
    "loong",
    "nq",
]
