import json

import pytest
import yaml
from typer.testing import CliRunner

from longctx.cli import app
from longctx.eval.compare import compare_runs


def _run(folder, model, task, groups):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": model, "task": task}))
    metrics = {"task": task, "model": model, "metric": "subem", "groups": groups}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "predictions.jsonl").write_text("")


def _g(setting, score, length=1024, mode="full"):
    return {"mode": mode, "length": length, "setting": setting, "n": 10, "subem": score}


def test_relative_drop_and_average(tmp_path):
    _run(
        tmp_path / "a",
        "base",
        "hotpotqa",
        [_g("none@0", 0.5), _g("snapkv@0.5", 0.4), _g("snapkv@0.9", 0.25), _g("", 0.3, 0, "gold")],
    )
    _run(tmp_path / "b", "base", "nq", [_g("", 0.8), _g("snapkv@0.5", 0.8)])
    _run(tmp_path / "c", "tuned", "nq", [_g("snapkv@0.5", 0.6)])  # no reference
    result = compare_runs([tmp_path / "a", tmp_path / "b", tmp_path / "c"], tmp_path / "out")
    rows = {(r["model"], r["task"], r["setting"]): r for r in result["rows"]}
    assert rows[("base", "hotpotqa", "snapkv@0.5")]["drop_pct"] == pytest.approx(-20.0)
    assert rows[("base", "hotpotqa", "snapkv@0.9")]["drop_pct"] == pytest.approx(-50.0)
    assert rows[("base", "nq", "snapkv@0.5")]["drop_pct"] == pytest.approx(0.0)
    assert rows[("tuned", "nq", "snapkv@0.5")]["drop_pct"] is None
    avg = {(a["model"], a["setting"]): a for a in result["average"]}
    assert avg[("base", "snapkv@0.5")]["drop_pct"] == pytest.approx(-10.0)
    assert avg[("base", "snapkv@0.5")]["n_tasks"] == 2
    assert ("tuned", "snapkv@0.5") not in avg
    assert (
        "| tuned | nq | 1024 | snapkv@0.5 | 60.0 | — | — |"
        in (tmp_path / "out" / "compare.md").read_text()
    )


def test_compare_cli_and_missing_metrics(tmp_path):
    _run(tmp_path / "a", "base", "nq", [_g("", 0.5), _g("knorm@0.5", 0.25)])
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "-50.0" in result.output
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="config.yaml is missing"):
        compare_runs([tmp_path / "empty"])
