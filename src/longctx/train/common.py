"""Training helpers shared by SFT and GRPO: data, model loading, LoRA, losses, logs, saving.

Records are the lines of ``train.jsonl`` / ``validation.jsonl`` from ``longctx data build``
(:mod:`longctx.data.icr`); :func:`conversational_dataset` turns them into TRL's conversational
prompt-completion format for one target format, so TRL applies the chat template and masks the
prompt out of the loss.

The two losses compute the same mean token cross-entropy. :func:`labelled_logits_loss` applies
the LM head only at positions whose next-token label is set, through transformers'
``logits_to_keep`` (a tensor of sequence positions), so a 32k-token prompt never gets
``(seq, vocab)`` logits; :func:`full_logits_loss` is the full-vocabulary reference.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from longctx.data.errors import DataError, require
from longctx.data.icr.assemble import user_message
from longctx.data.readers.base import iter_jsonl

logger = logging.getLogger(__name__)

LogFn = Callable[[dict[str, Any]], None]


def read_icr_records(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """ICR training records, checked for the fields training reads.

    Raises:
        FileNotFoundError: The file does not exist.
        DataError: A line is not JSON or lacks ``prompt`` / ``targets`` / ``answers``.
    """
    records = []
    for loc, record in iter_jsonl(path):
        require(record, "prompt", str, path, loc)
        targets = require(record, "targets", dict, path, loc)
        require(record, "answers", list, path, loc)
        for fmt, text in targets.items():
            if not isinstance(text, str):
                raise DataError(path, loc, f"targets.{fmt}", "expected a string")
        records.append(record)
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise DataError(path, "", "", "no training records")
    return records


def conversational_dataset(records: list[dict[str, Any]], target_format: str) -> Any:
    """A ``datasets.Dataset`` of ``{"prompt": [user turn], "completion": [assistant turn]}``.

    Raises:
        KeyError: A record has no target of ``target_format``.
    """
    from datasets import Dataset

    rows = []
    for r in records:
        if target_format not in r["targets"]:
            raise KeyError(f"record {r.get('id')!r} has no {target_format!r} target")
        rows.append(
            {
                "prompt": [{"role": "user", "content": user_message(r["prompt"], target_format)}],
                "completion": [{"role": "assistant", "content": r["targets"][target_format]}],
            }
        )
    return Dataset.from_list(rows)


def resolve_dtype(name: str, bf16: bool) -> torch.dtype:
    """``auto`` -> bfloat16 with mixed precision, else float32 (CPU training is float32)."""
    if name == "auto":
        return torch.bfloat16 if bf16 else torch.float32
    return getattr(torch, name)


def load_train_model(
    spec: str,
    dtype: torch.dtype,
    attn_implementation: str | None = None,
    frozen_base: str = "dense",
    on_status: Callable[[str], None] | None = None,
) -> tuple[Any, Any]:
    """The model (train mode) and tokenizer of a spec (an adapter folder is merged first).

    Args:
        spec: Model spec (see :mod:`longctx.models.loader`).
        dtype: Weight dtype of the dense weights.
        attn_implementation: Passed to ``from_pretrained`` when set.
        frozen_base: ``packed`` keeps the GGUF-quantised layers in their blocks
            (:func:`longctx.models.packed_base.pack_frozen_base`); needs a GGUF spec.
        on_status: Receives one-time conversion messages.

    Raises:
        ValueError: ``packed`` with a spec that is not ``embedded`` or a ``.gguf`` file.
    """
    from transformers import AutoModelForCausalLM

    from longctx.models.loader import gguf_file, load_model, load_tokenizer, resolve_spec

    gguf = gguf_file(spec) if frozen_base == "packed" else None
    if frozen_base == "packed" and gguf is None:
        raise ValueError(
            f"frozen_base 'packed' needs a GGUF model (embedded or a .gguf file), got {spec!r}"
        )
    source = resolve_spec(spec, on_status)
    if (Path(source) / "adapter_config.json").exists():
        model = load_model(source, device="cpu", dtype=dtype).model
    else:
        kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    if gguf is not None:
        from longctx.models.packed_base import pack_frozen_base

        packed = pack_frozen_base(model, gguf, Path(source), on_status)
        logger.info("frozen base: %d layers kept in GGUF blocks", packed["modules"])
    model.train()
    return model, load_tokenizer(source)


def lora_config(r: int, alpha: int, dropout: float, targets: list[str]) -> Any:
    """A PEFT ``LoraConfig`` for causal LMs (LoRA, Hu et al., 2021)."""
    from peft import LoraConfig

    return LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM"
    )


def load_policy(config: Any, frozen_base: str = "dense") -> tuple[Any, Any, Any]:
    """The model to train, its tokenizer and the PEFT config (``None`` for full fine-tuning).

    Args:
        config: A :class:`longctx.train.config.TrainingRuntime` (SFT or GRPO config).
        frozen_base: ``dense`` or ``packed`` (see :func:`load_train_model`).
    """
    dtype = resolve_dtype(config.dtype, config.bf16)
    model, tokenizer = load_train_model(
        config.model, dtype, config.attn_implementation, frozen_base
    )
    peft = None
    if config.lora:
        peft = lora_config(
            config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_targets
        )
    return model, tokenizer, peft


def latest_checkpoint(out: str | Path) -> Path | None:
    """The ``checkpoint-N`` folder of ``out`` with the largest N, or ``None``."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(out)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    return Path(last) if last else None


def _split_labels(inputs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
    """Next-token labels (``labels`` shifted left, -100 last, as transformers' loss pads them)
    and the model inputs without labels."""
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    model_inputs["use_cache"] = False
    return F.pad(inputs["labels"], (0, 1), value=-100)[:, 1:], model_inputs


def _mean(loss_sum: torch.Tensor, shift: torch.Tensor, num_items: Any) -> torch.Tensor:
    count = (shift != -100).sum() if num_items is None else torch.as_tensor(num_items)
    return loss_sum / count.to(loss_sum.device).clamp(min=1)


def labelled_logits_loss(
    model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
) -> torch.Tensor:
    """Token cross-entropy with the LM head applied only where a next-token label is set.

    Positions are shared across the batch (``logits_to_keep`` takes one index tensor): the union
    of the rows' labelled positions, a small superset for right-padded batches.

    Args:
        model: A causal LM (or PEFT / distributed wrapper) accepting ``logits_to_keep``.
        inputs: ``input_ids``, ``labels`` (-100 where ignored) and the usual mask keys.
        num_items_in_batch: Denominator (tokens over gradient accumulation); default: the
            labelled tokens of this batch.
    """
    shift, model_inputs = _split_labels(inputs)
    positions = (shift != -100).any(dim=0).nonzero().flatten()
    if positions.numel() == 0:  # nothing to learn: a differentiable zero
        positions = torch.zeros(1, dtype=torch.long, device=shift.device)
    logits = model(**model_inputs, logits_to_keep=positions).logits.float()
    targets = shift[:, positions]
    loss_sum = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return _mean(loss_sum, shift, num_items_in_batch)


def full_logits_loss(
    model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
) -> torch.Tensor:
    """The same loss from full-vocabulary logits over the whole sequence (the reference)."""
    shift, model_inputs = _split_labels(inputs)
    logits = model(**model_inputs).logits.float()
    loss_sum = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), shift.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return _mean(loss_sum, shift, num_items_in_batch)


class JsonlLogCallback(TrainerCallback):
    """Appends one JSON line per log event (``step``, ``loss``, ``lr``, ``seconds``, ...).

    Args:
        path: The ``train_log.jsonl`` file (appended to, so a resumed run continues it).
        on_log: Also receives each line's dict.
    """

    def __init__(self, path: str | Path, on_log: LogFn | None = None):
        self.path = Path(path)
        self.sink = on_log
        self.start = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        line: dict[str, Any] = {"step": state.global_step}
        if "loss" in logs:
            line["loss"] = float(logs["loss"])
        if "learning_rate" in logs:
            line["lr"] = float(logs["learning_rate"])
        line.update({k: float(v) for k, v in logs.items() if k.startswith("eval_")})
        line["seconds"] = round(time.perf_counter() - self.start, 3)
        if len(line) <= 2:  # only step and seconds: e.g. the final train summary
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        if self.sink is not None:
            self.sink(line)


def portable_base(spec: str) -> str:
    """The base-model name an adapter should record: ``embedded`` and hub ids stay as given,
    local folders become absolute paths."""
    path = Path(spec).expanduser()
    if spec == "embedded" or not path.exists():
        return spec
    return str(path.resolve())


def save_final(trainer: Any, folder: str | Path, spec: str) -> Path:
    """Save the trained adapters (or full model) and tokenizer, loadable by ``load_model``.

    For an adapter, ``base_model_name_or_path`` in ``adapter_config.json`` is rewritten to
    :func:`portable_base` of the spec (``"embedded"`` rather than this machine's cache path).
    """
    folder = Path(folder)
    trainer.save_model(str(folder))
    adapter = folder / "adapter_config.json"
    if trainer.is_world_process_zero() and adapter.exists():
        config = json.loads(adapter.read_text())
        config["base_model_name_or_path"] = portable_base(spec)
        adapter.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder


def run_training(
    config: Any, make_trainer: Callable[[Any, LogFn | None], Any], on_log: LogFn | None = None
) -> Path:
    """The run-folder protocol shared by SFT and GRPO.

    Resumes from the latest checkpoint in ``config.out`` when ``config.resume`` (from scratch,
    with a warning, when there is none; a fresh start clears ``train_log.jsonl``), writes
    ``config.yaml``, trains, and saves the final adapters or model to ``out/final``.
    """
    from longctx.config import dump_config

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = latest_checkpoint(out) if config.resume else None
    if config.resume and checkpoint is None:
        logger.warning("resume: no checkpoint in %s, starting from scratch", out)
    if checkpoint is None:
        (out / "train_log.jsonl").unlink(missing_ok=True)
    dump_config(config, out / "config.yaml")
    trainer = make_trainer(config, on_log)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return save_final(trainer, out / "final", config.model)
