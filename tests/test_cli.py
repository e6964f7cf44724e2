import json

from typer.testing import CliRunner

from longctx.cli import app


def test_cli_eval_on_a_local_model_folder(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "synthetic",
            "--model",
            str(tiny_model_dir),
            "--lengths",
            "384",
            "--mode",
            "full,none",
            "--limit",
            "2",
            "--max-new-tokens",
            "3",
            "--out",
            str(out),
            "--set",
            "synthetic_n=3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "subem" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_predictions"] == 4
    assert [g["mode"] for g in metrics["groups"]] == ["full", "none"]


def test_cli_bad_config_key_is_a_clear_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: synthetic\nnot_a_key: 1\n")
    result = CliRunner().invoke(app, ["eval", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "not_a_key" in str(result.exception)


def test_cli_data_synthetic_writes_jsonl(tmp_path):
    out = tmp_path / "s.jsonl"
    result = CliRunner().invoke(app, ["data", "synthetic", "--out", str(out), "--n", "6"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 6
