"""Seconds per SFT step and peak memory: completion-only logits against full-vocabulary logits.

    python bench/train_step.py [--model embedded] [--length 2k] [--steps 3]
                               [--variants labels,full[,trl]] [--frozen-base dense,packed]
                               [--no-gradient-checkpointing]

One LoRA SFT run (the answer target, batch 1) per variant and base storage, each in its own
subprocess so that its peak resident memory (``ru_maxrss`` of that process) is its own. Variants:

* ``labels``: the LM head only at labelled positions (``logits_to_keep``; the default);
* ``full``: full-vocabulary logits over the whole sequence, then cross-entropy;
* ``trl``: TRL 1.16's fused chunked LM head (every position, in tiles, without Triton).

The prompts are in-context-retrieval records filled to ``--length`` prompt tokens, built from the
built-in synthetic data (no download). Seconds/step is the median over the steps after the
first; "step peak" is the peak RSS minus the RSS once the model and trainer are ready (weights
paged in by a 16-token forward pass), which isolates what a training step adds; the whole-process
peak also holds the Python/torch runtime and the frozen weights, which no loss can shrink.

Base storage (``frozen_base``): ``dense`` holds the frozen base as float32 (0.5 GiB for the
embedded model); ``packed`` keeps it in the GGUF file's own 4/8-bit blocks (0.09 GiB), de-quantised
layer by layer, bit-identical (``longctx.models.packed_gguf``).

glibc raises its mmap threshold after large frees, so freed tensors of up to 32 MiB stay in the
heap and RSS then reports heap retention more than tensor memory (and varies from run to run).
The children therefore run with ``MALLOC_MMAP_THRESHOLD_=65536`` (large blocks always mapped and
returned on free), so RSS follows live memory; ``--default-malloc`` turns that off. The price is
page faults: measured at 2k with the packed base, glibc's defaults take 15.6 s/step instead of
20.6 but the labels run then peaks at 2.50 GiB instead of 0.95 (full: 3.39 instead of 1.93), most
of it freed activations that the heap keeps.
Goal: peak memory of ``labels`` <= 0.5x that of ``full``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_data(folder: Path, model: str, length: str, n: int) -> Path:
    """ICR records at ``length`` prompt tokens from the synthetic data."""
    from longctx.data.icr import BuildConfig, build_icr_dataset

    config = BuildConfig(
        sources=[{"format": "synthetic", "limit": n}],
        max_tokens=length,
        tokenizer=model,
        validation_fraction=0.0,
        out=str(folder),
    )
    return build_icr_dataset(config).train_path


def child(args: argparse.Namespace) -> None:
    """One run; prints a JSON line with the measurements."""
    import psutil
    import torch

    from longctx.train.config import SFTConfig
    from longctx.train.sft import make_trainer

    torch.manual_seed(0)
    out = Path(args.out)
    config = SFTConfig(
        model=args.model,
        data=args.data,
        limit=args.steps,
        out=str(out),
        max_steps=args.steps,
        lr=1e-4,
        logging_steps=1,
        save_steps=10**6,
        gradient_checkpointing=args.gradient_checkpointing,
        frozen_base=args.frozen_base,
    )
    trainer = make_trainer(config, logits_mode=args.child)
    with torch.no_grad():  # pages the (memory-mapped) weights in before the baseline is taken
        trainer.model(input_ids=torch.tensor([trainer.train_dataset[0]["input_ids"][:16]]))
    ready = psutil.Process().memory_info().rss
    trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    times = [b["seconds"] - a["seconds"] for a, b in zip(log, log[1:], strict=False)]
    lengths = [len(trainer.train_dataset[i]["input_ids"]) for i in range(args.steps)]
    result = {
        "variant": args.child,
        "seconds_per_step": statistics.median(times) if times else float("nan"),
        "peak_rss": peak,
        "ready_rss": ready,
        "tokens": statistics.mean(lengths),
    }
    print("RESULT " + json.dumps(result), flush=True)


def run_variant(variant: str, base: str, data: Path, args: argparse.Namespace, tmp: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--data",
        str(data),
        "--model",
        args.model,
        "--steps",
        str(args.steps),
        "--out",
        str(tmp / f"{base}-{variant}"),
        "--frozen-base",
        base,
    ]
    if not args.gradient_checkpointing:
        command.append("--no-gradient-checkpointing")
    env = dict(os.environ)
    if not args.default_malloc:
        env.update(MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{base} {variant} failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(lines[-1][len("RESULT ") :]), "base": base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--length", default="2k", help="prompt tokens, e.g. 2k")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variants", default="labels,full", help="labels, full, trl")
    parser.add_argument(
        "--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false"
    )
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's dynamic mmap threshold (RSS then includes freed, retained heap)",
    )
    parser.add_argument(
        "--frozen-base",
        default="dense,packed",
        help="comma list: dense (float32 LoRA base) and/or packed (kept in its GGUF blocks)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    bases = args.frozen_base.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-train-step-") as name:
        tmp = Path(name)
        data = build_data(tmp / "data", args.model, args.length, n=4 * args.steps)
        if "packed" in bases:  # builds the packed copy once, outside the measured processes
            import torch

            from longctx.train.common import load_train_model

            load_train_model(args.model, torch.float32, frozen_base="packed")
        results = [
            run_variant(v, base, data, args, tmp)
            for base in bases
            for v in args.variants.split(",")
        ]
    report(results, args)


def report(results: list[dict], args: argparse.Namespace) -> None:
    gib = 1024**3
    print(
        f"LoRA SFT step, {args.model}, {args.length} prompts "
        f"(gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"{'default malloc' if args.default_malloc else 'malloc mmap threshold 64 KiB'}"
    )
    print(
        f"{'base':7} {'variant':8} {'tokens':>7} {'s/step':>8} {'peak RSS GiB':>13} "
        f"{'ready GiB':>10} {'step peak GiB':>14}"
    )
    for r in results:
        print(
            f"{r['base']:7} {r['variant']:8} {r['tokens']:7.0f} {r['seconds_per_step']:8.2f} "
            f"{r['peak_rss'] / gib:13.3f} {r['ready_rss'] / gib:10.3f} "
            f"{(r['peak_rss'] - r['ready_rss']) / gib:14.3f}"
        )
    for base in dict.fromkeys(r["base"] for r in results):
        by = {r["variant"]: r for r in results if r["base"] == base}
        if "labels" not in by or "full" not in by:
            continue
        lab, full = by["labels"], by["full"]
        ratio = lab["peak_rss"] / full["peak_rss"]
        step_ratio = (lab["peak_rss"] - lab["ready_rss"]) / (full["peak_rss"] - full["ready_rss"])
        speed = lab["seconds_per_step"] / full["seconds_per_step"]
        print(
            f"{base} base, labels / full: peak RSS {ratio:.3f}x, step peak {step_ratio:.3f}x, "
            f"time/step {speed:.2f}x (goal: peak <= 0.5x)"
        )


if __name__ == "__main__":
    main()
