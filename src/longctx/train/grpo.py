"""GRPO on the ICR data with the five in-context-retrieval rewards.

Group Relative Policy Optimization (Shao et al., 2024, "DeepSeekMath: Pushing the Limits of
Mathematical Reasoning in Open Language Models", arXiv:2402.03300) samples G completions per
prompt, scores them with a reward, and uses the reward standardised within the group as the
advantage of every token of a completion, with a KL penalty ``beta`` towards the reference
(initial) policy. TRL's ``GRPOTrainer`` does the optimisation; this module adds:

- the data: each ``train.jsonl`` record becomes a conversational prompt, the record's ``prompt``
  with the instruction of the reward's target format in front (``judge`` uses ``reasoning``),
  chat-templated by TRL with the generation prompt and no pre-filled answer prefix (every
  reward reads a literal ``"The answer is:"`` line), plus the reward columns (``answers``,
  ``gold_ids``, ``documents``, ``question``);
- the reward: :func:`longctx.train.rewards.as_trl_reward` with the configured weights; TRL logs
  ``rewards/reward_<name>/mean`` and the reward logs each component (``<name>/<component>``);
- rollouts without vLLM from one shared pre-fill per prompt (:mod:`longctx.train.rollout`), and
  log-probabilities from one prompt pass per group (exact; not with gradient checkpointing);
  ``shared_prefill: false`` restores TRL's own; compression-aware training (``train_compress``;
  both in :mod:`longctx.train.compress_aware`);
- logs: every TRL log line (loss, reward, reward_std, kl, entropy, components, ...) appended to
  ``<out>/train_log.jsonl``; outputs as in SFT (``<out>/final``, adapters with base
  ``"embedded"`` for the embedded model), so ``longctx eval --model <out>/final`` reads them.

Run from a shell (also under ``accelerate launch`` with DeepSpeed or FSDP)::

    python -m longctx.train.grpo --config recipes/grpo_cpu_tiny.yaml [--reward ids]
        [--train-compress knorm --train-ratio 0.5] [--resume] [key=value ...]
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from trl import GRPOTrainer

from longctx.data.icr.assemble import user_message
from longctx.train.common import (
    JsonlLogCallback,
    LogFn,
    load_policy,
    read_icr_records,
    run_training,
)
from longctx.train.compress_aware import QUESTION_MARKER, CompressAwareMixin
from longctx.train.grpo_config import REWARD_FORMATS, GRPOConfig
from longctx.train.rollout import SamplingParams, group_prompts, shared_prefill_rollouts

logger = logging.getLogger(__name__)


def grpo_dataset(
    records: list[dict[str, Any]],
    target_format: str,
    tokenizer: Any = None,
    max_prompt_length: int | None = None,
) -> Any:
    """A ``datasets.Dataset`` of conversational prompts and the columns the rewards read.

    Records whose chat-templated prompt exceeds ``max_prompt_length`` tokens are dropped.
    """
    from datasets import Dataset

    rows, dropped = [], 0
    for r in records:
        prompt = [{"role": "user", "content": user_message(r["prompt"], target_format)}]
        if max_prompt_length is not None and tokenizer is not None:
            ids = tokenizer.apply_chat_template(
                prompt, add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
            if len(ids) > max_prompt_length:
                dropped += 1
                continue
        docs = [
            d.get("text", "") if isinstance(d, dict) else str(d) for d in r.get("documents", [])
        ]
        rows.append(
            {
                "prompt": prompt,
                "answers": [str(a) for a in r["answers"]],
                "gold_ids": [int(i) for i in r.get("gold_ids", [])],
                "documents": docs,
                "question": str(r.get("question", "")),
            }
        )
    if dropped:
        logger.warning(
            "dropped %d records longer than %d prompt tokens", dropped, max_prompt_length
        )
    if not rows:
        raise ValueError("no training records left (all longer than max_prompt_length?)")
    return Dataset.from_list(rows)


class _RewardJudge:
    """Adapts a :class:`longctx.eval.judge.Judge` to the rewards' ``grade(prompt) -> text``."""

    def __init__(self, judge: Any):
        self.judge = judge

    def grade(self, prompt: str) -> str:
        return self.judge.grade_text(prompt)


def make_reward_fn(config: GRPOConfig) -> Any:
    """The TRL reward function of the run (with a judge for ``reward: judge``)."""
    from longctx.train.rewards import as_trl_reward

    judge = None
    if config.reward == "judge":
        from longctx.eval.judge import make_judge

        local = None if config.judge_url else config.judge_model
        cache = config.judge_cache or str(Path(config.out) / "judge_cache")
        judge = _RewardJudge(make_judge(config.judge_url, config.judge_model, local, cache))
    return as_trl_reward(config.reward, judge=judge, **config.reward_weights)


class GRPOLogCallback(JsonlLogCallback):
    """Appends every numeric value of each TRL log event to ``train_log.jsonl``.

    Keys are TRL's (``loss``, ``reward``, ``reward_std``, ``kl``, ``entropy``,
    ``rewards/reward_<name>/mean``, ``<name>/<component>``, ``compress/kept_tokens``, ...), with
    ``learning_rate`` as ``lr``; ``step`` and ``seconds`` come first and last.
    """

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero or "train_runtime" in logs:
            return
        line: dict[str, Any] = {"step": state.global_step}
        for key, value in logs.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
                line["lr" if key == "learning_rate" else key] = float(value)
        line["seconds"] = round(time.perf_counter() - self.start, 3)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        if self.sink is not None:
            self.sink(line)


class ICRGRPOTrainer(CompressAwareMixin, GRPOTrainer):
    """``GRPOTrainer`` with shared-prefill rollouts and compression-aware scoring.

    Args:
        shared_prefill: Sample the G completions of a prompt from one pre-fill (non-vLLM path)
            and score them from one prompt pass (exact; not with gradient checkpointing).
        compress: A compression method for compression-aware training, or ``None``.
    """

    def __init__(self, *args: Any, shared_prefill: bool = True, compress: Any = None, **kw: Any):
        super().__init__(*args, **kw)
        self.shared_prefill = self.share_prompt = shared_prefill
        self.compress = compress
        self.marker_ids = self._tokenizer.encode(QUESTION_MARKER, add_special_tokens=False)

    def _generate_single_turn(
        self,
        prompt_ids: list[list[int]],
        images: Any,
        multimodal_fields: dict[str, Any],
        num_generations: int,
        has_tool_images: bool = False,
    ) -> tuple[list[list[int]], Any]:
        """Completion ids (and no sampling log-probabilities) for TRL's repeated prompts."""
        plain = not (self.use_vllm or self.use_transformers_continuous_batching or images)
        if not plain or multimodal_fields or not (self.shared_prefill or self.compress is not None):
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        from trl.models import unwrap_model_for_generation

        params = SamplingParams(
            self.max_completion_length,
            self.temperature,
            self.top_p,
            self.top_k or 0,
            tuple(self.eos_token_ids),
        )
        groups = group_prompts(prompt_ids)
        with (
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as model,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
        ):
            if self.compress is not None:
                return self.compressed_generate(model, groups, params), None
            completions = []
            for ids, count in groups:
                completions.extend(shared_prefill_rollouts(model, ids, count, params).completions)
        return completions, None


def make_trainer(config: GRPOConfig, on_log: LogFn | None = None) -> ICRGRPOTrainer:
    """Build the trainer of a run (data, model, LoRA, reward, callbacks); nothing runs yet."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    args = config.trl_args()  # before the model: DeepSpeed ZeRO-3 partitions it while loading
    model, tokenizer, peft = load_policy(config)
    fmt = config.target_format
    train = grpo_dataset(
        read_icr_records(config.data, config.limit), fmt, tokenizer, config.max_prompt_length
    )
    evals = None
    if config.eval_data:
        evals = grpo_dataset(
            read_icr_records(config.eval_data), fmt, tokenizer, config.max_prompt_length
        )
    compress = None
    if config.train_compress:
        from longctx.compress import check_supported, make_method

        compress = make_method(
            config.train_compress, ratio=config.train_ratio, query_aware=config.train_query_aware
        )
        check_supported(model, compress)
    return ICRGRPOTrainer(
        model=model,
        reward_funcs=[make_reward_fn(config)],
        args=args,
        train_dataset=train,
        eval_dataset=evals,
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=[GRPOLogCallback(out / "train_log.jsonl", on_log)],
        shared_prefill=config.shared_prefill,
        compress=compress,
    )


def train_grpo(config: GRPOConfig, on_log: LogFn | None = None) -> Path:
    """Train a model with GRPO on ICR records and save it to ``<out>/final``.

    Writes ``<out>/config.yaml``, ``<out>/train_log.jsonl`` (appended to on resume),
    ``<out>/checkpoint-N`` every ``save_steps`` and the final adapters (or full model) with the
    tokenizer in ``<out>/final``, loadable by :func:`longctx.models.loader.load_model`.

    Args:
        config: The run configuration; with ``resume``, training continues from the latest
            checkpoint in ``out`` (from scratch when there is none).
        on_log: Receives each log line (``step``, ``loss``, ``reward``, ``kl``, ...).

    Returns:
        The ``final`` folder.
    """
    return run_training(config, make_trainer, on_log)


if __name__ == "__main__":
    import argparse

    from longctx.config import load_config

    parser = argparse.ArgumentParser(prog="python -m longctx.train.grpo", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML recipe (a GRPOConfig)")
    parser.add_argument("--reward", choices=list(REWARD_FORMATS), help="reward to optimise")
    parser.add_argument("--train-compress", help="compression-aware training with this method")
    parser.add_argument("--train-ratio", type=float, help="compression ratio for --train-compress")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (YAML values)")
    cli = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(
        GRPOConfig,
        cli.config,
        cli.overrides,
        reward=cli.reward,
        train_compress=cli.train_compress,
        train_ratio=cli.train_ratio,
        resume=cli.resume or None,
    )
    print(f"final model: {train_grpo(cfg, on_log=lambda line: print(line, flush=True))}")
