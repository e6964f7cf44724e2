"""Typed configuration of GRPO runs (``recipes/grpo_*.yaml`` load into :class:`GRPOConfig`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from longctx.data.context import parse_length
from longctx.train.config import TrainingRuntime

#: The reward of each ``--reward`` choice and the target format whose instruction the policy sees.
REWARD_FORMATS: dict[str, str] = {
    "answer": "answer",
    "ids": "ids",
    "ids_content": "ids_content",
    "ids_quotes": "ids_quotes",
    "judge": "reasoning",
}

#: Compression methods usable for compression-aware training: those that physically evict cache
#: entries and keep every layer at one length (AdaKV masks instead of evicting, PyramidKV keeps
#: layer-dependent lengths, top-k decoding changes attention only for one-token steps).
TRAINABLE_METHODS = ("none", "snapkv", "streaming_llm", "expected_attention", "knorm", "tova")


class GRPOConfig(TrainingRuntime):
    """Configuration of :func:`longctx.train.grpo.train_grpo` (also the run's ``config.yaml``).

    Attributes:
        model: Model spec (``embedded``, a folder, a ``.gguf`` file or a hub id).
        data: ``train.jsonl`` written by ``longctx data build``.
        eval_data: Optional ``validation.jsonl``, evaluated (rewards) every ``eval_steps``.
        limit: Train on the first N records only.
        out: Run folder: checkpoints, ``train_log.jsonl``, ``config.yaml``, ``final/``.
        reward: ``answer`` | ``ids`` | ``ids_content`` | ``ids_quotes`` | ``judge``; the policy
            is shown the instruction of the matching target format (``judge``: ``reasoning``).
        reward_weights: Fields of the reward's weights dataclass (e.g. ``{w_ids: 1.0}``).
        num_generations: G, completions sampled per prompt (the group of GRPO).
        beta: KL coefficient against the reference (initial) policy; 0 skips the reference.
        epsilon: PPO-style clipping of the importance ratio.
        loss_type: TRL loss aggregation (``grpo``, ``dapo``, ``dr_grpo``, ``bnpo``, ...).
        scale_rewards: Advantage scaling: ``group`` (GRPO), ``batch`` or ``none`` (Dr. GRPO).
        lr: Peak learning rate.
        lr_scheduler: Transformers scheduler name.
        warmup_ratio: Share of steps spent warming up.
        weight_decay: AdamW weight decay.
        max_grad_norm: Gradient clipping norm.
        max_steps: Optimiser steps; ``-1`` runs ``epochs`` epochs.
        epochs: Epochs when ``max_steps`` is -1.
        batch_size: Prompts per device per optimiser step (each gives G completions).
        grad_accum: Micro-batches the ``batch_size * G`` completions are split into.
        temperature: Sampling temperature of the rollouts (and of the log-probabilities).
        top_p: Nucleus sampling threshold.
        top_k: Top-k sampling (0: off).
        max_completion_length: Most tokens per completion.
        max_prompt_length: Drop records whose chat-templated prompt is longer (``None``: keep
            all); prompts are never truncated, since that would cut documents or the question.
        lora: LoRA adapters (Hu et al., 2021) when true, full fine-tuning when false.
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling numerator.
        lora_dropout: Dropout on the LoRA branch (dropout is disabled during GRPO anyway).
        lora_targets: Module names that get adapters.
        gradient_checkpointing: Recompute activations in the backward pass.
        save_steps: Checkpoint every N steps.
        save_total_limit: Keep at most this many checkpoints.
        logging_steps: Log (and append to ``train_log.jsonl``) every N steps.
        eval_steps: Evaluate every N steps (default: ``save_steps``).
        seed: Seed of initialisation, data order and sampling.
        resume: Continue from the latest ``checkpoint-N`` in ``out``.
        shared_prefill: Without vLLM, sample the G completions of a prompt from one pre-fill
            (:mod:`longctx.train.rollout`), and (without gradient checkpointing) compute their
            log-probabilities from one prompt pass; false uses TRL's generation and scoring.
        use_vllm: Generate with vLLM (GPU); ``vllm_mode`` ``colocate`` or ``server``.
        vllm_mode: ``colocate`` (in the training processes) or ``server``.
        vllm_gpu_memory_utilization: GPU memory share of colocated vLLM.
        vllm_max_model_length: vLLM context length (default: the model's).
        vllm_tensor_parallel_size: Tensor parallelism of colocated vLLM.
        train_compress: Compression-aware training: roll out and score completions on a KV
            cache compressed by this method (:mod:`longctx.train.compress_aware`).
        train_ratio: Compression ratio (fraction of the pre-filled KV pairs removed).
        train_query_aware: Compress the question with the context (else only the context).
        judge_url: OpenAI-compatible server of the judge (``judge`` reward).
        judge_model: The judge's model name on that server, or a local model spec.
        judge_cache: On-disk cache of judge answers (default: ``<out>/judge_cache``).
        log_completions: Print samples and write ``completions/*.parquet`` at each log.
        dtype: Weight dtype; ``auto`` is bfloat16 with ``bf16`` and float32 otherwise.
        bf16: Mixed precision in bfloat16 (GPU).
        attn_implementation: ``sdpa``, ``flash_attention_2``, ... (default: the model's).
        optim: Transformers optimiser name.
        deepspeed: DeepSpeed JSON config path, when not given through ``accelerate launch``.
        fsdp: Transformers ``fsdp`` option string.
        fsdp_config: Transformers ``fsdp_config`` mapping.
        dataloader_num_workers: Data loading worker processes.
        report_to: Loggers (``none``, ``tensorboard``, ``wandb``).
    """

    out: str = "runs/grpo"
    reward: str = "answer"
    reward_weights: dict[str, Any] = Field(default_factory=dict)
    num_generations: int = Field(default=4, ge=2)
    beta: float = Field(default=0.04, ge=0.0)
    epsilon: float = Field(default=0.2, gt=0.0)
    loss_type: str = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    lr: float = 1e-6
    lr_scheduler: str = "constant"
    max_steps: int = 100
    temperature: float = Field(default=1.0, gt=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    max_completion_length: int = Field(default=256, ge=1)
    max_prompt_length: int | None = None
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    save_steps: int = Field(default=50, ge=1)
    logging_steps: int = Field(default=1, ge=1)
    shared_prefill: bool = True
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = Field(default=0.3, gt=0.0, le=1.0)
    vllm_max_model_length: int | None = None
    vllm_tensor_parallel_size: int = Field(default=1, ge=1)
    train_compress: str | None = None
    train_ratio: float = Field(default=0.5, ge=0.0, lt=1.0)
    train_query_aware: bool = False
    judge_url: str | None = None
    judge_model: str | None = None
    judge_cache: str | None = None
    log_completions: bool = False

    @field_validator("reward")
    @classmethod
    def _known_reward(cls, value: str) -> str:
        if value not in REWARD_FORMATS:
            raise ValueError(f"unknown reward {value!r}; choose from {', '.join(REWARD_FORMATS)}")
        return value

    @field_validator("train_compress")
    @classmethod
    def _trainable_method(cls, value: str | None) -> str | None:
        if value is not None and value not in TRAINABLE_METHODS:
            raise ValueError(
                f"compression-aware training supports {', '.join(TRAINABLE_METHODS)}; got {value!r}"
            )
        return value

    @field_validator("max_prompt_length", "vllm_max_model_length", mode="before")
    @classmethod
    def _parse_length(cls, value: object) -> object:
        return parse_length(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> GRPOConfig:
        from longctx.train.rewards import reward_range

        try:
            reward_range(self.reward, **self.reward_weights)
        except TypeError as error:
            raise ValueError(str(error)) from None
        if (self.batch_size * self.num_generations) % self.grad_accum:
            raise ValueError(
                f"grad_accum ({self.grad_accum}) must divide batch_size * num_generations "
                f"({self.batch_size} * {self.num_generations})"
            )
        if self.train_compress and self.use_vllm:
            raise ValueError("train_compress needs the transformers rollouts: set use_vllm: false")
        if self.reward == "judge" and not self.judge_model:
            raise ValueError("the judge reward needs judge_model (with judge_url for a server)")
        return self

    def trl_args(self) -> Any:
        """TRL ``GRPOConfig`` (training arguments) of the run; ``batch_size`` prompts per device
        per step become ``batch_size * G / grad_accum`` completions per micro-batch."""
        from trl import GRPOConfig as TRLGRPOConfig

        g = self.num_generations
        return TRLGRPOConfig(
            **self.trainer_arguments(),
            per_device_train_batch_size=self.batch_size * g // self.grad_accum,
            per_device_eval_batch_size=g,
            num_generations=g,
            beta=self.beta,
            epsilon=self.epsilon,
            loss_type=self.loss_type,
            scale_rewards=self.scale_rewards,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_completion_length=self.max_completion_length,
            use_vllm=self.use_vllm,
            vllm_mode=self.vllm_mode,
            vllm_gpu_memory_utilization=self.vllm_gpu_memory_utilization,
            vllm_max_model_length=self.vllm_max_model_length,
            vllm_tensor_parallel_size=self.vllm_tensor_parallel_size,
            disable_dropout=True,
            log_completions=self.log_completions,
            remove_unused_columns=False,
        )

    @property
    def target_format(self) -> str:
        """The target format whose instruction the policy is shown."""
        return REWARD_FORMATS[self.reward]
