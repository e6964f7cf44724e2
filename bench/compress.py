"""KV-cache compression: longctx's eval against kvpress's own pipeline, bytes kept, top-k decode.

    python bench/compress.py [--limit 10] [--length 2k] [--ratio 0.5] [--methods snapkv,knorm]

On the embedded model and HotpotQA examples from ../shared/data, at ``--length`` tokens:
(a) for each method at ``--ratio``, seconds for ``longctx eval --compress METHOD`` against
kvpress's ``kv-press-text-generation`` pipeline on the same contexts, questions and press
(throughput ratio, goal >= 1.0); (b) mean KV bytes kept / full (goal within 2% of 1 - ratio);
(c) decode ms/token of ``topk_decode`` against full attention at ``--decode-length`` tokens
(goal: no slower).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from longctx.data.context import parse_length

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HOTPOT = SHARED / "hotpotqa" / "hotpot_dev_distractor_400.json"
PRESSES = ["snapkv", "streaming_llm", "expected_attention", "knorm", "tova", "pyramidkv", "adakv"]


def run_longctx(loaded, method: str, args, out: Path) -> tuple[float, list[dict]]:
    """Seconds of one longctx eval run with a compression method, and its predictions."""
    from longctx.eval.config import EvalConfig
    from longctx.eval.runner import run_eval

    cfg = EvalConfig(
        task="hotpotqa",
        data=str(HOTPOT),
        lengths=[args.length],
        modes=["full"],
        limit=args.limit,
        compress=[method],
        ratios=[args.ratio],
        max_new_tokens=args.max_new_tokens,
        out=str(out / method),
    )
    start = time.perf_counter()
    run_eval(cfg, loaded=loaded)
    seconds = time.perf_counter() - start
    preds = [json.loads(line) for line in (out / method / "predictions.jsonl").open()]
    return seconds, preds


def run_kvpress(loaded, method: str, args, prompts: list[tuple[str, str]]) -> float:
    """Seconds of kvpress's pipeline on the same contexts and questions with the same press."""
    from transformers import pipeline

    from longctx.compress import make_method

    pipe = pipeline("kv-press-text-generation", model=loaded.model, tokenizer=loaded.tokenizer)
    wrapper = make_method(method, ratio=args.ratio)
    start = time.perf_counter()
    for context, question in prompts:
        n = len(loaded.tokenizer.encode(context))
        pipe(
            context,
            question=question,
            press=wrapper.build_press(n),
            max_new_tokens=args.max_new_tokens,
        )
    return time.perf_counter() - start


def decode_ms_per_token(loaded, tokens: int, ratio: float, new_tokens: int = 32, repeats: int = 3):
    """Decoding ms/token on a ``tokens``-long context: full attention vs topk_decode.

    The two alternate ``repeats`` times on the same context and decode the same number of
    tokens (EOS ignored); the medians are reported.
    """
    import statistics

    import torch

    from longctx.compress import generate_compressed, make_method

    ids = torch.randint(100, 40000, (tokens,)).tolist()
    question = loaded.tokenizer.encode("\nQuestion: what is it?", add_special_tokens=False)
    runs: dict[str, list[float]] = {"none": [], "topk_decode": []}
    for _ in range(repeats):
        for name, times in runs.items():
            method = make_method(name, ratio=0.0 if name == "none" else ratio)
            gen = generate_compressed(loaded, ids, question, method, new_tokens, ignore_eos=True)
            decode = gen.seconds - gen.prefill_seconds
            times.append(1000 * decode / max(gen.new_tokens, 1))
    return {name: statistics.median(times) for name, times in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--length", default="2k")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--methods", default=",".join(PRESSES))
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--decode-length", default="4k")
    args = parser.parse_args()
    args.length = parse_length(args.length)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if not HOTPOT.exists():
        raise SystemExit(f"../shared/data not present: {HOTPOT} is missing")
    from longctx.data.context import render_documents
    from longctx.data.readers import read_examples
    from longctx.models.loader import load_model

    loaded = load_model(args.model, device="cpu")
    examples = {e.id: e for e in read_examples("hotpotqa", HOTPOT)}
    docs = {f"{e.id}/{d.id}": d for e in examples.values() for d in e.documents}
    docs.update({d.id: d for e in examples.values() for d in e.documents})
    print(f"{'method':>20} {'longctx s':>10} {'kvpress s':>10} {'ratio':>6} {'kept/full':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for method in [m for m in args.methods.split(",") if m]:
            seconds, preds = run_longctx(loaded, method, args, Path(tmp))
            prompts = [
                (render_documents([docs[i] for i in p["doc_ids"]]), examples[p["id"]].question)
                for p in preds
            ]
            kept = sum(
                p["compress"]["kv_bytes_kept"] / p["compress"]["kv_bytes_full"] for p in preds
            ) / len(preds)
            try:
                peer = run_kvpress(loaded, method, args, prompts)
            except RuntimeError as err:  # e.g. PyramidKV's uneven layers in kvpress's pipeline
                print(
                    f"{method:>20} {seconds:>10.1f} {'failed':>10} {'-':>6} {kept:>10.3f}  "
                    f"(kvpress pipeline: {str(err)[:60]})",
                    flush=True,
                )
                continue
            print(
                f"{method:>20} {seconds:>10.1f} {peer:>10.1f} {peer / seconds:>6.2f} {kept:>10.3f}",
                flush=True,
            )
    from longctx.compress.topk_kernel import load_topk_kernel

    kernel = "fused CPU kernel" if load_topk_kernel() is not None else "torch implementation"
    decode = decode_ms_per_token(loaded, parse_length(args.decode_length), args.ratio)
    print(f"topk_decode runs its {kernel}")
    print(
        f"decode at {args.decode_length}: full {decode['none']:.1f} ms/token, topk_decode "
        f"{decode['topk_decode']:.1f} ms/token (ratio {decode['none'] / decode['topk_decode']:.2f})"
    )


if __name__ == "__main__":
    main()
