"""KV-cache compression methods and generation on a compressed cache.

Every method is a dataclass registered under an exact name (``METHODS``); build one with
``make_method(name, ratio=..., **fields)`` and run it with :func:`generate_compressed` (one
question) or :func:`generate_many` (several questions, one pre-fill). Methods:

======================  ==========================================================================
``none``                no compression (reference)
``snapkv``              SnapKV (Li et al. 2024), kvpress ``SnapKVPress``
``streaming_llm``       StreamingLLM (Xiao et al. 2023), kvpress ``StreamingLLMPress``
``expected_attention``  Expected Attention (Devoto et al. 2025), kvpress ``ExpectedAttentionPress``
``knorm``               key L2 norm (Devoto et al. 2024), kvpress ``KnormPress``
``tova``                TOVA (Oren et al. 2024), kvpress ``TOVAPress``
``pyramidkv``           PyramidKV (Cai et al. 2024), kvpress ``PyramidKVPress``
``adakv``               Ada-KV (Feng et al. 2024), kvpress ``AdaKVPress`` around a scorer
``topk_decode``         RetrievalAttention-style top-k decoding (Liu, Chen et al. 2024)
======================  ==========================================================================
"""

from longctx.compress import (  # noqa: F401  (importing registers the methods)
    adakv,
    expected_attention,
    knorm,
    none,
    pyramidkv,
    snapkv,
    streaming_llm,
    topk_decode,
    tova,
)
from longctx.compress.base import (
    CompressionMethod,
    UnsupportedModelError,
    check_supported,
    full_kv_bytes,
    kv_geometry,
    resident_bytes,
)
from longctx.compress.generate import CompressedGeneration, generate_compressed, generate_many
from longctx.compress.registry import METHODS, make_method, register_method

# The registered names, in the order the README table lists them (a test keeps them in sync).
DOCUMENTED_METHODS: list[str] = [
    "none",
    "snapkv",
    "streaming_llm",
    "expected_attention",
    "knorm",
    "tova",
    "pyramidkv",
    "adakv",
    "topk_decode",
]

__all__ = [
    "DOCUMENTED_METHODS",
    "METHODS",
    "CompressedGeneration",
    "CompressionMethod",
    "UnsupportedModelError",
    "check_supported",
    "full_kv_bytes",
    "generate_compressed",
    "generate_many",
    "kv_geometry",
    "make_method",
    "register_method",
    "resident_bytes",
]
