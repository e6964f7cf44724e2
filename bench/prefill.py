"""Prefill throughput of the embedded model against this machine's fp32 matmul FLOP/s.

    python bench/prefill.py [--model embedded] [--lengths 1k,2k] [--repeats 2]

Model FLOPs of one prefill of T tokens (forward only, Kaplan et al. 2020 / PaLM appendix B):
``2 * N * T`` for the weight matmuls (N = parameters outside the embedding lookup, the LM head
included) plus ``2 * n_layers * T^2 * d_attn`` for causal attention scores and values (half
of the full ``4 * n_layers * T^2 * d_attn``). The peer is a plain fp32 ``torch.matmul`` of
square matrices in the same process and thread setting. Goal: achieved / peak >= 0.5.
"""

from __future__ import annotations

import argparse
import time

import torch

from longctx.data.context import parse_lengths
from longctx.models.loader import load_model


def matmul_flops(n: int = 2048, repeats: int = 10) -> float:
    """Achieved FLOP/s of an fp32 ``n x n`` matmul (best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def prefill_flops(model, tokens: int) -> float:
    """Forward FLOPs of a causal prefill of ``tokens`` tokens."""
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    tied = getattr(cfg, "tie_word_embeddings", False)
    matmul_params = n_params - (0 if tied else embed)  # the tied head still does its matmul
    d_attn = cfg.num_attention_heads * getattr(
        cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads
    )
    return 2 * matmul_params * tokens + 2 * cfg.num_hidden_layers * tokens**2 * d_attn


@torch.inference_mode()
def time_prefill(model, tokens: int, repeats: int) -> float:
    ids = torch.randint(100, 40000, (1, tokens))
    model(input_ids=ids, use_cache=False, logits_to_keep=1)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model(input_ids=ids, use_cache=False, logits_to_keep=1)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--lengths", default="1k,2k")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--attn", default="sdpa", help="attention implementation (sdpa, eager)")
    args = parser.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    loaded = load_model(args.model, device="cpu")
    model = loaded.model
    model.set_attn_implementation(args.attn)
    peak = matmul_flops()
    print(f"threads={torch.get_num_threads()}  fp32 matmul (2048^3): {peak / 1e9:.1f} GFLOP/s")
    print(f"{'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'GFLOP/s':>8} {'ratio':>6}")
    for tokens in parse_lengths(args.lengths):
        seconds = time_prefill(model, tokens, args.repeats)
        achieved = prefill_flops(model, tokens) / seconds
        print(
            f"{tokens:>7} {seconds:>8.2f} {tokens / seconds:>9.0f} {achieved / 1e9:>8.1f} "
            f"{achieved / peak:>6.2f}"
        )


if __name__ == "__main__":
    main()
