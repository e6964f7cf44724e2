"""GRPO training on ICR records: steps, logs, LoRA updates, resume, compression, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from longctx.config import ConfigError, load_config
from longctx.train.grpo_config import GRPOConfig

ROOT = Path(__file__).resolve().parents[1]

FACTS = [
    ("Ravel", "Maurice Ravel was born in Ciboure in 1875.", "Where was Ravel born?", "Ciboure"),
    ("Bolero", "Bolero premiered in Paris in 1928.", "When did Bolero premiere?", "1928"),
    ("Seine", "The Seine flows through Paris.", "Which river flows through Paris?", "Seine"),
    ("Lyon", "Lyon lies where the Rhone meets the Saone.", "Which city has the Saone?", "Lyon"),
]
FILLER = ("Oslo", "Oslo is the capital of Norway and has many parks.")


def icr_record(i: int) -> dict:
    """A record shaped like ``longctx data build`` output, with a short prompt."""
    title, text, question, answer = FACTS[i % len(FACTS)]
    docs = [(FILLER[0], FILLER[1], False), (title, text, True)]
    documents = [
        {"id": f"d{j}", "title": t, "text": x, "is_gold": g, "relabelled": False}
        for j, (t, x, g) in enumerate(docs)
    ]
    context = "\n\n".join(f"[DOC {j}] (Title: {t}) {x}" for j, (t, x, _) in enumerate(docs, 1))
    answer_line = f"The answer is: {answer}"
    return {
        "id": f"q{i}",
        "task": "hotpotqa",
        "question": question,
        "answers": [answer],
        "documents": documents,
        "gold_ids": [2],
        "prompt": f"{context}\n\nQuestion: {question}",
        "targets": {
            "answer": answer_line,
            "ids": f"Relevant documents: [DOC 2]\n{answer_line}",
            "ids_content": f"Relevant documents: [DOC 2]\n[DOC 2] {text}\n{answer_line}",
            "ids_quotes": f'Relevant documents: [DOC 2]\n[DOC 2] "{text}"\n{answer_line}',
            "reasoning": f'1. [DOC 2] states that "{text}".\n2. Therefore, the answer is '
            f"{answer}.\n{answer_line}",
        },
        "depth": 1.0,
        "depth_bin": 4,
        "n_tokens": 80,
    }


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("icr") / "train.jsonl"
    path.write_text("".join(json.dumps(icr_record(i)) + "\n" for i in range(4)))
    return path


def tiny_config(model_dir: Path, data: Path, out: Path, **values) -> GRPOConfig:
    base = dict(
        model=str(model_dir),
        data=str(data),
        out=str(out),
        reward="ids",
        num_generations=2,
        batch_size=1,
        max_steps=2,
        max_completion_length=8,
        lr=1e-2,
        beta=0.04,
        lora_r=4,
        lora_alpha=8,
        save_steps=1,
        save_total_limit=None,
        logging_steps=1,
        temperature=1.0,
    )
    base.update(values)
    return GRPOConfig(**base)


@pytest.fixture
def shaped_reward(monkeypatch):
    """The real ``ids`` reward plus 0.01 * (first token id mod 7).

    A random tiny model never writes "The answer is:", so every real reward is 0, the group
    std is 0 and so are the advantages; the small shaping term gives the groups a spread.
    """
    from longctx.train import grpo
    from longctx.train.rewards import as_trl_reward

    real = as_trl_reward("ids")

    def reward_ids(prompts=None, completions=(), completion_ids=(), **kwargs):
        scores = real(prompts=prompts, completions=completions, **kwargs)
        return [s + 0.01 * (ids[0] % 7) for s, ids in zip(scores, completion_ids, strict=True)]

    monkeypatch.setattr(grpo, "make_reward_fn", lambda config: reward_ids)


def _lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


def test_grpo_trains_lora_logs_rewards_and_resumes(
    tiny_model_dir, train_file, tmp_path, shaped_reward
):
    from safetensors.torch import load_file

    from longctx.models.loader import load_model
    from longctx.train.grpo import make_trainer, train_grpo

    out = tmp_path / "run"
    config = tiny_config(tiny_model_dir, train_file, out)
    trainer = make_trainer(config)
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    lora_b = [k for k in before if "lora_B" in k]
    base = [k for k in before if "lora_" not in k]
    assert lora_b and all(before[k].abs().sum() == 0 for k in lora_b)
    assert any(after[k].abs().sum() > 0 for k in lora_b)
    assert all(torch.equal(before[k], after[k].detach()) for k in base)

    log = _lines(out)
    assert [x["step"] for x in log if "loss" in x][-1] == 2
    first = log[0]
    for key in ("reward", "reward_std", "rewards/reward_ids/mean", "ids/ids_f1", "kl", "seconds"):
        assert key in first, key

    # resume: the full run (checkpoints at steps 1 and 2) continues to step 3 from checkpoint-2
    resumed = tiny_config(tiny_model_dir, train_file, out, max_steps=3, resume=True)
    final = train_grpo(resumed)
    steps = [x["step"] for x in _lines(out) if "loss" in x]
    assert steps == [1, 2, 3]
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    adapter = json.loads((final / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_model_dir.resolve())
    weights = load_file(final / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())
    assert load_model(str(final), device="cpu").model is not None


def test_compression_aware_step_reports_kept_cache(
    tiny_model_dir, train_file, tmp_path, shaped_reward
):
    from longctx.train.grpo import train_grpo

    out = tmp_path / "compressed"
    config = tiny_config(
        tiny_model_dir,
        train_file,
        out,
        max_steps=1,
        train_compress="knorm",
        train_ratio=0.5,
        beta=0.04,
        save_steps=10,
    )
    train_grpo(config)
    line = next(x for x in _lines(out) if "loss" in x)
    assert 0 < line["compress/kept_tokens"] < line["compress/prompt_tokens"]
    assert line["compress/kept_ratio"] == pytest.approx(0.5, abs=0.02)
    assert "kl" in line
    assert (out / "final" / "adapter_config.json").exists()


def test_gpu_recipe_parses_with_known_keys():
    path = ROOT / "recipes" / "grpo_gpu_qwen7b_1m.yaml"
    raw = yaml.safe_load(path.read_text())
    assert set(raw) <= set(GRPOConfig.model_fields)
    config = load_config(GRPOConfig, path)
    assert config.use_vllm and config.vllm_mode == "colocate"
    assert config.num_generations == 5 and config.beta == 0.001 and config.lr == 1e-6
    first = path.read_text().splitlines()[0]
    assert first.startswith("# accelerate launch") and "-m longctx.train.grpo" in first
    assert "--config recipes/grpo_gpu_qwen7b_1m.yaml" in first
    cpu_path = ROOT / "recipes" / "grpo_cpu_tiny.yaml"
    assert "--config recipes/grpo_cpu_tiny.yaml" in cpu_path.read_text().splitlines()[0]
    assert set(yaml.safe_load(cpu_path.read_text())) <= set(GRPOConfig.model_fields)
    cpu = load_config(GRPOConfig, cpu_path)
    assert cpu.model == "embedded" and cpu.num_generations == 4 and not cpu.use_vllm


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="unknown"):
        load_config(GRPOConfig, None, ["data=x", "reward=nope"])
    with pytest.raises(ConfigError, match="bad weights"):
        load_config(GRPOConfig, None, ["data=x", "reward=ids", "reward_weights={nope: 1}"])
    with pytest.raises(ConfigError, match="use_vllm"):
        load_config(GRPOConfig, None, ["data=x", "train_compress=knorm", "use_vllm=true"])
    with pytest.raises(ConfigError, match="supports"):
        load_config(GRPOConfig, None, ["data=x", "train_compress=adakv"])
    with pytest.raises(ConfigError, match="Extra inputs"):
        load_config(GRPOConfig, None, ["data=x", "nope=1"])
    assert GRPOConfig(data="x", reward="judge", judge_model="m").target_format == "reasoning"


def test_trl_generation_path_still_available(tiny_model_dir, train_file, tmp_path, shaped_reward):
    from longctx.train.grpo import make_trainer

    config = tiny_config(
        tiny_model_dir,
        train_file,
        tmp_path / "trl",
        max_steps=1,
        shared_prefill=False,
        beta=0.0,
        save_steps=10,
    )
    trainer = make_trainer(config)
    trainer.train()
    assert trainer.state.global_step == 1
    line = _lines(tmp_path / "trl")[0]
    assert line["completions/mean_length"] <= 8 and "rewards/reward_ids/mean" in line


def test_judge_reward_is_built_from_config(tmp_path):
    from longctx.train.grpo import make_reward_fn

    config = GRPOConfig(
        data="x",
        out=str(tmp_path),
        reward="judge",
        judge_url="http://127.0.0.1:9/v1",
        judge_model="m",
    )
    fn = make_reward_fn(config)
    assert fn.__name__ == "reward_judge"
    # no numbered step: the judge is not called, only R_AO counts
    scores = fn(
        prompts=[None],
        completions=["The answer is: Paris"],
        answers=[["Paris"]],
        gold_ids=[[1]],
        documents=[["Paris is in France."]],
        question=["Capital?"],
    )
    assert scores == [1.0]


def test_shared_prompt_logps_and_grads_equal_trl(tiny_model_dir, train_file, tmp_path):
    from longctx.train.grpo import make_trainer

    config = tiny_config(tiny_model_dir, train_file, tmp_path / "eq", lora_r=2)
    trainer = make_trainer(config)
    torch.nn.init.normal_(next(p for n, p in trainer.model.named_parameters() if "lora_B" in n))
    tok = trainer.processing_class
    prompts = [tok.encode("[DOC 1] Ravel was born in Ciboure.\n\nQuestion: where?")] * 2
    prompts.append(tok.encode("Question: when did Bolero premiere?"))
    width = max(len(p) for p in prompts)
    prompt_ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
    prompt_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    completion = torch.randint(100, 5000, (3, 6), generator=torch.Generator().manual_seed(0))
    completion_mask = torch.ones_like(completion)
    completion_mask[0, 4:] = 0
    ids = torch.cat([prompt_ids, completion], 1)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    results = []
    for share in (True, False):
        trainer.share_prompt = share
        trainer.model.zero_grad()
        logps, entropy, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, ids, mask, 6, compute_entropy=True
        )
        (logps * completion_mask).sum().backward()
        grads = [p.grad.clone() for n, p in trainer.model.named_parameters() if "lora_" in n]
        results.append((logps * completion_mask, entropy * completion_mask, grads))
    (lp1, ent1, g1), (lp2, ent2, g2) = results
    torch.testing.assert_close(lp1, lp2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent1, ent2, atol=1e-4, rtol=1e-4)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_dataset_prompts_carry_instruction_and_reward_columns(tokenizer):
    from longctx.train.grpo import grpo_dataset
    from longctx.train.targets import INSTRUCTIONS

    records = [icr_record(0), icr_record(1)]
    records[1]["prompt"] += " and more" * 60  # longer than the budget below
    data = grpo_dataset(records, "reasoning", tokenizer, max_prompt_length=250)
    assert len(data) == 1
    row = data[0]
    assert row["prompt"][0]["content"].startswith(INSTRUCTIONS["reasoning"])
    assert row["prompt"][0]["content"].endswith("Question: Where was Ravel born?")
    assert row["gold_ids"] == [2] and row["answers"] == ["Ciboure"]
    assert row["documents"][1].startswith("Maurice Ravel")


def test_full_fine_tuning_with_reference_model(tiny_model_dir, train_file, tmp_path, shaped_reward):
    from longctx.train.grpo import train_grpo

    out = tmp_path / "full"
    config = tiny_config(tiny_model_dir, train_file, out, max_steps=1, lora=False, lr=1e-3)
    final = train_grpo(config)
    assert (final / "model.safetensors").exists() and not (final / "adapter_config.json").exists()
    assert "kl" in _lines(out)[0]
