"""The README's registry tables list exactly the registered tasks, methods and rewards."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _table_names(section: str) -> list[str]:
    match = re.search(rf"<!-- registry: {section} -->(.*?)<!-- /registry -->", README, re.S)
    assert match, f"README has no registry table for {section}"
    return re.findall(r"^\| `([^`]+)` \|", match.group(1), re.M)


@pytest.mark.parametrize("section", ["tasks", "compress", "rewards"])
def test_readme_tables_match_registries(section):
    if section == "tasks":
        from longctx.eval.tasks import TASKS, get_task

        get_task("synthetic")
        registered = sorted(TASKS)
        assert sorted(_table_names(section)) == registered
    elif section == "compress":
        from longctx.compress import DOCUMENTED_METHODS, METHODS

        assert _table_names(section) == DOCUMENTED_METHODS
        assert sorted(METHODS) == sorted(DOCUMENTED_METHODS)
    else:
        from longctx.train.rewards import REWARD_RANGES, REWARDS

        names = _table_names(section)
        assert names == list(REWARDS)
        ranges = re.findall(r"\| (-?[\d.]+) – (-?[\d.]+) \|$", README, re.M)
        assert [tuple(map(float, r)) for r in ranges] == [REWARD_RANGES[n] for n in names]
