"""The demo's pipeline (the study in miniature) on a tiny random model: the fast CI variant."""

import json

import pytest

from longctx.study import StudyConfig, run_study


@pytest.mark.slow
def test_study_pipeline_on_tiny_model_produces_a_report(tmp_path, tiny_model_dir):
    cfg = StudyConfig(model=str(tiny_model_dir), out=str(tmp_path / "study"), n_eval=2, n_train=8,
                      lengths=[384], rag_budget=256, compress=["snapkv", "knorm"], ratios=[0.5],
                      sft_steps=2, grpo_steps=1, num_generations=2, max_completion_length=4)
    lines: list[str] = []
    report = run_study(cfg, on_status=lines.append)
    assert report.name == "report.html" and report.exists()
    evals = tmp_path / "study" / "eval"
    labels = sorted(p.name for p in evals.iterdir())
    assert labels == ["base", "base-compress", "grpo-answer", "grpo-answer-compress", "sft-ao",
                      "sft-ao-compress"]
    base = json.loads((evals / "base" / "metrics.json").read_text())
    assert {g["mode"] for g in base["groups"]} == {"full", "gold", "none", "rag"}
    comp = json.loads((evals / "sft-ao-compress" / "metrics.json").read_text())
    assert {g["setting"] for g in comp["groups"]} == {"none@0", "snapkv@0.5", "knorm@0.5"}
    html = report.read_text()
    for label in ("base", "sft-ao", "grpo-answer"):
        assert label in html
    assert (tmp_path / "study" / "train" / "sft-ao" / "final" / "adapter_config.json").exists()
    # a rerun reuses everything: no new training, no new predictions
    before = (evals / "base" / "predictions.jsonl").read_text()
    run_study(cfg, on_status=lines.append)
    assert (evals / "base" / "predictions.jsonl").read_text() == before
