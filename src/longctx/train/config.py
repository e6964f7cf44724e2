"""Typed training configurations (YAML recipes under ``recipes/`` load into these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from longctx.data.context import parse_length
from longctx.train.targets import TARGET_FORMATS

#: Default LoRA targets: the attention projections of Llama / Qwen / Mistral-style models.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


class TrainingRuntime(BaseModel):
    """Fields every training run shares (SFT and GRPO): model, data, optimiser, LoRA,
    checkpoints, precision and the distributed/logging pass-through settings."""

    model_config = ConfigDict(extra="forbid")

    model: str = "embedded"
    data: str
    eval_data: str | None = None
    limit: int | None = Field(default=None, ge=1)
    out: str = "runs/train"
    max_steps: int = -1
    epochs: float = 1.0
    lr: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = Field(default=1, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    lora: bool = True
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = 32
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    lora_targets: list[str] = Field(default_factory=lambda: list(LORA_TARGETS))
    gradient_checkpointing: bool = False
    save_steps: int = Field(default=100, ge=1)
    save_total_limit: int | None = 2
    logging_steps: int = Field(default=10, ge=1)
    eval_steps: int | None = None
    seed: int = 0
    resume: bool = False
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    bf16: bool = False
    attn_implementation: str | None = None
    optim: str = "adamw_torch"
    deepspeed: str | None = None
    fsdp: str | None = None
    fsdp_config: dict[str, Any] | None = None
    dataloader_num_workers: int = 0
    report_to: list[str] = Field(default_factory=lambda: ["none"])

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_logger(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    def trainer_arguments(self) -> dict[str, Any]:
        """The transformers ``TrainingArguments`` this runtime sets, shared by SFT and GRPO
        (batch sizes and the trainer-specific ones are added by each trainer)."""
        evaluate = self.eval_data is not None
        return {
            "output_dir": self.out,
            "max_steps": self.max_steps,
            "num_train_epochs": self.epochs,
            "learning_rate": self.lr,
            "lr_scheduler_type": self.lr_scheduler,
            "warmup_steps": self.warmup_ratio,
            "weight_decay": self.weight_decay,
            "max_grad_norm": self.max_grad_norm,
            "gradient_accumulation_steps": self.grad_accum,
            "gradient_checkpointing": self.gradient_checkpointing,
            "gradient_checkpointing_kwargs": {"use_reentrant": False},
            "save_strategy": "steps",
            "save_steps": self.save_steps,
            "save_total_limit": self.save_total_limit,
            "logging_steps": self.logging_steps,
            "logging_first_step": True,
            "eval_strategy": "steps" if evaluate else "no",
            "eval_steps": (self.eval_steps or self.save_steps) if evaluate else None,
            "seed": self.seed,
            "bf16": self.bf16,
            "fp16": False,
            "optim": self.optim,
            "deepspeed": self.deepspeed,
            "fsdp": self.fsdp or "",
            "fsdp_config": self.fsdp_config,
            "dataloader_num_workers": self.dataloader_num_workers,
            "report_to": self.report_to,
        }


class SFTConfig(TrainingRuntime):
    """Configuration of :func:`longctx.train.sft.train_sft` (also the run's ``config.yaml``).

    Attributes:
        model: Model spec (``embedded``, a folder, a ``.gguf`` file or a hub id).
        data: ``train.jsonl`` written by ``longctx data build``.
        eval_data: Optional ``validation.jsonl``, evaluated every ``eval_steps``.
        limit: Train on the first N records only.
        target_format: The variant's target (``answer`` = the answer-only baseline SFT-AO).
        out: Run folder: checkpoints, ``train_log.jsonl``, ``config.yaml``, ``final/``.
        max_steps: Optimiser steps; ``-1`` runs ``epochs`` epochs.
        epochs: Epochs when ``max_steps`` is -1.
        lr: Peak learning rate.
        lr_scheduler: Transformers scheduler name.
        warmup_ratio: Share of steps spent warming up.
        weight_decay: AdamW weight decay.
        max_grad_norm: Gradient clipping norm.
        batch_size: Sequences per device per micro-batch.
        grad_accum: Micro-batches per optimiser step.
        lora: LoRA adapters (Hu et al., 2021) when true, full fine-tuning when false.
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling numerator (the update is scaled by ``alpha / r``).
        lora_dropout: Dropout on the LoRA branch.
        lora_targets: Module names that get adapters.
        gradient_checkpointing: Recompute activations in the backward pass (less memory).
        save_steps: Checkpoint every N steps (``checkpoint-N`` folders in ``out``).
        save_total_limit: Keep at most this many checkpoints.
        logging_steps: Log (and append to ``train_log.jsonl``) every N steps.
        eval_steps: Evaluate every N steps (default: ``save_steps``).
        max_length: Truncate tokenised sequences to this many tokens (``None``: never; a
            truncated sequence may lose its completion, so prefer a budget that fits).
        seed: Seed of initialisation and data order.
        resume: Continue from the latest ``checkpoint-N`` in ``out`` (fresh start if none).
        completion_only_logits: Apply the LM head only where labels are set (the prompt's
            positions never get vocabulary logits); false computes full-vocabulary logits over
            the whole sequence (the memory-hungry reference).
        dtype: Weight dtype; ``auto`` is bfloat16 with ``bf16`` and float32 otherwise.
        frozen_base: ``dense`` keeps the frozen base in ``dtype``; ``packed`` (LoRA on a GGUF
            model: ``embedded`` or a ``.gguf`` file) keeps its layers in the file's own
            quantisation blocks and de-quantises one layer at a time (QLoRA-style,
            bit-identical weights; ``longctx.models.packed_gguf``).
        bf16: Mixed precision in bfloat16 (GPU).
        attn_implementation: ``sdpa``, ``flash_attention_2``, ... (default: the model's).
        optim: Transformers optimiser name (``adamw_torch``, ``adamw_torch_fused``, ...).
        deepspeed: DeepSpeed JSON config path, when not given through ``accelerate launch``.
        fsdp: Transformers ``fsdp`` option string (e.g. ``"full_shard auto_wrap"``).
        fsdp_config: Transformers ``fsdp_config`` mapping.
        dataloader_num_workers: Data loading worker processes.
        report_to: Loggers (``none``, ``tensorboard``, ``wandb``).
    """

    out: str = "runs/sft"
    target_format: str = "answer"
    max_length: int | None = None
    completion_only_logits: bool = True
    frozen_base: Literal["dense", "packed"] = "dense"

    @model_validator(mode="after")
    def _packed_base_needs_lora(self) -> SFTConfig:
        if self.frozen_base == "packed" and not self.lora:
            raise ValueError("frozen_base: 'packed' keeps the base frozen, so it needs lora: true")
        return self

    @field_validator("target_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in TARGET_FORMATS:
            raise ValueError(
                f"unknown target format {value!r}; choose from {', '.join(TARGET_FORMATS)}"
            )
        return value

    @field_validator("max_length", mode="before")
    @classmethod
    def _parse_max_length(cls, value: object) -> object:
        return parse_length(value) if isinstance(value, str) else value
