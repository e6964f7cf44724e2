"""GRPO rollout time: G samples from one shared pre-fill vs TRL's transformers generation path.

    python bench/rollout.py [--model embedded] [--prompts 4] [--tokens 1k] [--g 5] [--new 32]

TRL's ``GRPOTrainer`` without vLLM calls ``model.generate(do_sample=True)`` on the prompt
repeated G times, so the prompt is pre-filled G times. :mod:`longctx.train.rollout` pre-fills it
once and samples the G continuations from the repeated cache. Prompts are HotpotQA questions
from ``../shared/data`` rendered with :func:`longctx.data.context.build_context` to about
``--tokens`` chat-templated tokens, as GRPO shows them (the ``ids`` instruction), or synthetic
examples when the data is absent. Both paths sample exactly ``--new`` tokens per row (EOS
ignored, so they do the same work; ``--eos`` lets rows stop). Goal: ratio >= 3.

``prefill_s`` is one pre-fill of the prompt (P); with D = shared_s - P the shared path's
decoding time, ``bound`` = ``(G * P + D) / (P + D)`` is the ratio that sharing the pre-fill alone
would give if TRL decoded as fast. The shared path also decodes faster than ``generate``: its
G-row steps run under :func:`longctx.models.small_batch.small_batch_linear` (on CPU ``(W @ x.T).T``
instead of ``F.linear``, ~1.5x per step for G=5), so the ratio can exceed ``bound``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from longctx.data.context import TokenCounter, build_context, parse_length
from longctx.data.icr.assemble import PROMPT_TEMPLATE, user_message
from longctx.models.loader import load_model
from longctx.train.rollout import SamplingParams, prefill, shared_prefill_rollouts

HOTPOT = Path(__file__).resolve().parents[2] / "shared/data/hotpotqa/hotpot_dev_distractor_400.json"


def load_examples(n: int) -> tuple[list, str]:
    """``n`` examples and their source (HotpotQA when present, else synthetic)."""
    if HOTPOT.exists():
        from longctx.data.readers.hotpotqa import read_hotpotqa

        return read_hotpotqa(HOTPOT)[: n * 10], "hotpotqa"
    from longctx.data.synthetic import generate_synthetic

    return generate_synthetic(n=n * 10, seed=0), "synthetic"


def build_prompts(tokenizer, examples: list, n: int, tokens: int) -> list[list[int]]:
    """Chat-templated GRPO prompts of about ``tokens`` tokens (other examples fill the context)."""
    counter = TokenCounter(tokenizer)
    pool = [doc for ex in examples for doc in ex.documents]
    prompts = []
    for example in examples[:n]:
        budget = tokens
        while True:
            context = build_context(example, "full", counter, budget=budget, pool=pool)
            text = PROMPT_TEMPLATE.format(context=context.text, question=example.question)
            message = [{"role": "user", "content": user_message(text, "ids")}]
            ids = tokenizer.apply_chat_template(
                message, add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
            if len(ids) <= tokens or budget < 64:
                prompts.append(list(ids))
                break
            budget -= len(ids) - tokens + 8
    return prompts


def trl_generate(model, ids: list[int], g: int, new: int, params: SamplingParams, eos: bool):
    """What ``GRPOTrainer._generate_single_turn`` does without vLLM: ``generate`` on G copies."""
    batch = torch.tensor([ids] * g)
    return model.generate(
        input_ids=batch,
        attention_mask=torch.ones_like(batch),
        do_sample=True,
        max_new_tokens=new,
        min_new_tokens=1 if eos else new,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=0,
        eos_token_id=list(params.eos_token_ids) or None,
        pad_token_id=model.generation_config.pad_token_id,
    )


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--tokens", default="1k")
    parser.add_argument("--g", type=int, default=5)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--eos", action="store_true", help="let rows stop at EOS")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.model, device="cpu")
    model, tokenizer = loaded.model, loaded.tokenizer
    eos_ids = (tokenizer.eos_token_id,) if args.eos else ()
    params = SamplingParams(max_new_tokens=args.new, eos_token_ids=eos_ids)
    examples, source = load_examples(args.prompts)
    prompts = build_prompts(tokenizer, examples, args.prompts, parse_length(args.tokens))
    print(
        f"model={args.model} data={source} threads={torch.get_num_threads()} G={args.g} "
        f"new_tokens={args.new} eos={'on' if args.eos else 'off'}"
    )
    torch.manual_seed(0)
    with torch.inference_mode():
        shared_prefill_rollouts(model, prompts[0][:64], args.g, params)  # warm-up
        trl_generate(model, prompts[0][:64], args.g, 4, params, args.eos)
        totals = [0.0, 0.0]
        head = ("prompt", "tokens", "prefill_s", "shared_s", "trl_s", "ratio", "bound")
        print("{:>6} {:>6} {:>9} {:>9} {:>8} {:>6} {:>6}".format(*head))
        for i, ids in enumerate(prompts):
            pre = timed(lambda ids=ids: prefill(model, ids))
            shared = timed(lambda ids=ids: shared_prefill_rollouts(model, ids, args.g, params))
            trl = timed(
                lambda ids=ids: trl_generate(model, ids, args.g, args.new, params, args.eos)
            )
            totals[0] += shared
            totals[1] += trl
            decode = max(shared - pre, 1e-9)
            bound = (args.g * pre + decode) / (pre + decode)
            print(
                f"{i:>6} {len(ids):>6} {pre:>9.2f} {shared:>9.2f} {trl:>8.2f} "
                f"{trl / shared:>6.2f} {bound:>6.2f}"
            )
    ratio = totals[1] / totals[0]
    print(f"{'total':>6} {'':>6} {'':>9} {totals[0]:>9.2f} {totals[1]:>8.2f} {ratio:>6.2f}")


if __name__ == "__main__":
    main()
