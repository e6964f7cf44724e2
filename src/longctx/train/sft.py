"""Supervised fine-tuning on the ICR data (the answer-only baseline SFT-AO and the other targets).

TRL's ``SFTTrainer`` trains on conversational prompt-completion pairs: it applies the model's
chat template and, with ``completion_only_loss``, masks the prompt tokens out of the labels.
Adapters are LoRA (Hu et al., 2021) on the attention projections unless ``lora: false``.

Logits: with ``completion_only_logits`` (default), :class:`ICRSFTTrainer` computes the loss with
:func:`~longctx.train.common.labelled_logits_loss`, which asks the model for logits only at the
labelled positions (transformers' ``logits_to_keep`` with a position tensor), so a long prompt
never gets ``(seq, vocab)`` logits. TRL 1.16 also patches its own fused, chunked LM head into
``SFTTrainer``, but it projects only labelled positions on Triton devices and every position
(in tiles) elsewhere; ``logits_mode="trl"`` keeps that path, ``"full"`` computes full logits.

Run from a shell (also under ``accelerate launch`` with DeepSpeed or FSDP)::

    python -m longctx.train.sft --config recipes/cpu_tiny.yaml [--resume] [key=value ...]
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from trl import SFTTrainer

from longctx.train.common import (
    JsonlLogCallback,
    LogFn,
    conversational_dataset,
    full_logits_loss,
    labelled_logits_loss,
    load_policy,
    read_icr_records,
    run_training,
)
from longctx.train.config import SFTConfig

logger = logging.getLogger(__name__)
LOGITS_MODES = ("labels", "full", "trl")


class ICRSFTTrainer(SFTTrainer):
    """``SFTTrainer`` whose loss computes logits only where needed (see the module docstring).

    Args:
        logits_mode: ``labels`` (LM head at labelled positions), ``full`` (full-vocabulary
            logits everywhere) or ``trl`` (TRL's own fused LM head).
    """

    def __init__(self, *args: Any, logits_mode: str = "labels", **kwargs: Any):
        if logits_mode not in LOGITS_MODES:
            raise ValueError(f"logits_mode must be one of {LOGITS_MODES}, got {logits_mode!r}")
        super().__init__(*args, **kwargs)
        self.logits_mode = logits_mode

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.logits_mode == "trl":
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        fn = labelled_logits_loss if self.logits_mode == "labels" else full_logits_loss
        loss = fn(model, inputs, num_items_in_batch)
        # Like Trainer: the token count spans every rank, and DDP averages the gradients.
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        return (loss, None) if return_outputs else loss


def trl_args(config: SFTConfig) -> Any:
    """TRL ``SFTConfig`` (training arguments) for a run."""
    from trl import SFTConfig as TRLSFTConfig

    return TRLSFTConfig(
        **config.trainer_arguments(),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        prediction_loss_only=True,
        max_length=config.max_length,
        completion_only_loss=True,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def make_trainer(
    config: SFTConfig, on_log: LogFn | None = None, logits_mode: str | None = None
) -> ICRSFTTrainer:
    """Build the trainer of a run (data, model, LoRA, callbacks); nothing is trained yet.

    Args:
        config: The run configuration.
        on_log: Receives each ``train_log.jsonl`` line.
        logits_mode: Overrides ``config.completion_only_logits`` (``labels``/``full``/``trl``).

    Raises:
        ValueError: ``trl`` logits with a packed base (TRL's fused head reads ``lm_head.weight``).
    """
    mode = logits_mode or ("labels" if config.completion_only_logits else "full")
    if mode == "trl" and config.frozen_base == "packed":
        raise ValueError("TRL's fused LM head reads lm_head.weight: it needs frozen_base 'dense'")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    train = conversational_dataset(
        read_icr_records(config.data, config.limit), config.target_format
    )
    evals = None
    if config.eval_data:
        evals = conversational_dataset(read_icr_records(config.eval_data), config.target_format)
    args = trl_args(config)  # before the model: DeepSpeed ZeRO-3 partitions it while loading
    model, tokenizer, peft = load_policy(config, config.frozen_base)
    return ICRSFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evals,
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=[JsonlLogCallback(out / "train_log.jsonl", on_log)],
        logits_mode=mode,
    )


def train_sft(config: SFTConfig, on_log: LogFn | None = None) -> Path:
    """Fine-tune a model on ICR records and save it to ``<out>/final``.

    Writes ``<out>/config.yaml``, ``<out>/train_log.jsonl`` (appended to on resume),
    ``<out>/checkpoint-N`` every ``save_steps`` and the final adapters (or full model) with the
    tokenizer in ``<out>/final``, loadable by :func:`longctx.models.loader.load_model`.

    Args:
        config: The run configuration; with ``resume``, training continues from the latest
            checkpoint in ``out`` (from scratch when there is none).
        on_log: Receives each log line (``step``, ``loss``, ``lr``, ``seconds``).

    Returns:
        The ``final`` folder.
    """
    return run_training(config, make_trainer, on_log)


if __name__ == "__main__":
    import argparse

    from longctx.config import load_config

    parser = argparse.ArgumentParser(prog="python -m longctx.train.sft", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML recipe (an SFTConfig)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (YAML values)")
    cli = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(SFTConfig, cli.config, cli.overrides, resume=cli.resume or None)
    print(f"final model: {train_sft(cfg, on_log=lambda line: print(line, flush=True))}")
