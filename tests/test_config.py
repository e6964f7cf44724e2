import pytest

from longctx.config import ConfigError, load_config
from longctx.eval.config import EvalConfig


def test_yaml_then_values_then_overrides(tmp_path):
    path = tmp_path / "eval.yaml"
    path.write_text(
        "# longctx eval --config eval.yaml\ntask: hotpotqa\nlengths: [1k, 2k]\nlimit: 5\n"
    )
    cfg = load_config(EvalConfig, path, ["limit=7", "modes=full,gold"], model="m")
    assert cfg.task == "hotpotqa"
    assert cfg.lengths == [1024, 2048]
    assert cfg.limit == 7
    assert cfg.modes == ["full", "gold"]
    assert cfg.model == "m"


def test_unknown_key_names_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: hotpotqa\nlenghts: [1k]\n")
    with pytest.raises(ConfigError) as err:
        load_config(EvalConfig, path)
    assert "bad.yaml" in str(err.value) and "lenghts" in str(err.value)


def test_bad_values_are_errors():
    with pytest.raises(ConfigError, match="modes"):
        load_config(EvalConfig, None, ["modes=everything"])
    with pytest.raises(ConfigError, match="depth"):
        load_config(EvalConfig, None, ["depth=1.5"])
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(EvalConfig, None, ["limit"])
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        load_config(EvalConfig, "nowhere.yaml")
