"""Reports over hand-made run folders: tables equal the metrics, missing stays missing, plots,
a self-contained HTML page (checked in headless Chromium when it is installed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from longctx.report import MISSING, RunFolderError, build_report, load_runs, write_report
from longctx.report.runs import parse_base_pairs, parse_setting
from longctx.report.tables import format_cell
from tests.browser import find_chromium, render_page

A, B, FT = "org/model-a", "model-B", "sft-ao"

# (task, domain, model spec, extra config, groups as (mode, length, setting, score))
RUNS = {
    "nq-a": (
        "nq",
        "in",
        A,
        {},
        [
            ("full", 1024, "", 0.50),
            ("full", 2048, "", 0.40),
            ("gold", 0, "", 0.80),
            ("none", 0, "", 0.10),
        ],
    ),
    # model B has no 2k run
    "nq-b": (
        "nq",
        "in",
        "org/model-b",
        {"label": B},
        [("full", 1024, "", 0.30), ("gold", 0, "", 0.60), ("none", 0, "", 0.05)],
    ),
    "hotpot-a": ("hotpotqa", "in", A, {}, [("full", 1024, "", 0.60), ("full", 2048, "", 0.20)]),
    "hotpot-b": ("hotpotqa", "in", "org/model-b", {"label": B}, [("full", 1024, "", 0.25)]),
    "loong-a": (
        "loong",
        "out",
        A,
        {},
        [
            ("full", 4096, "", 0.35),
            ("full", 8192, "", 0.30),
            ("rag", 4096, "bm25", 0.45),
            ("rag", 4096, "dense", 0.40),
        ],
    ),
    "compress-a": (
        "synthetic",
        "builtin",
        A,
        {},
        [
            ("full", 1024, "none@0", 0.60),
            ("full", 1024, "snapkv@0.5", 0.45),
            ("full", 1024, "snapkv@0.75", 0.30),
        ],
    ),
    "compress-b": (
        "synthetic",
        "builtin",
        "org/model-b",
        {"label": B},
        [("full", 1024, "none@0", 0.50), ("full", 1024, "snapkv@0.5", 0.50)],
    ),
    "nq-ft": (
        "nq",
        "in",
        "runs/train/sft-ao/final",
        {"label": FT, "base_model": A},
        [("full", 1024, "", 0.60), ("full", 2048, "", 0.50)],
    ),
    "loong-ft": (
        "loong",
        "out",
        "runs/train/sft-ao/final",
        {"label": FT, "base_model": A},
        [("full", 4096, "", 0.30)],
    ),
}


def write_run(folder: Path, task: str, domain: str, model: str, extra: dict, groups) -> Path:
    """A run folder as `longctx eval` writes it (one prediction per group)."""
    folder.mkdir(parents=True)
    config = {"task": task, "data": None, "model": model, "lengths": [1024], **extra}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    preds, rows = [], []
    for i, (mode, length, setting, score) in enumerate(groups):
        record = {
            "id": f"ex{i}",
            "task": task,
            "mode": mode,
            "length": length,
            "setting": setting,
            "prompt_tokens": length,
            "truncated_tokens": 0,
            "scores": {"subem": score, "f1": score / 2},
        }
        if "@" in setting:
            method, ratio = setting.split("@")
            record["compress"] = {
                "method": method,
                "ratio": float(ratio),
                "kv_bytes_kept": int(1000 * (1 - float(ratio))),
                "kv_bytes_full": 1000,
            }
        preds.append(record)
        rows.append(
            {
                "mode": mode,
                "length": length,
                "setting": setting,
                "n": 1,
                "subem": score,
                "f1": score / 2,
                "prompt_tokens": float(length),
                "truncated": 0,
            }
        )
    (folder / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    metrics = {
        "task": task,
        "model": model,
        "metric": "subem",
        "domain": domain,
        "n_predictions": len(preds),
        "groups": rows,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    return [write_run(root / name, *spec) for name, spec in RUNS.items()]


@pytest.fixture(scope="module")
def written(run_dirs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    path = write_report(run_dirs, out)
    assert path == out / "report.html"
    return out


@pytest.fixture(scope="module")
def report(run_dirs, tmp_path_factory):
    return build_report(load_runs(run_dirs), tmp_path_factory.mktemp("plots"))


def label_of(model: str, extra: dict) -> str:
    return extra.get("label") or model


def test_per_length_tables_equal_metrics_files(report, run_dirs):
    inside = report.tables["in_domain_lengths"]
    outside = report.tables["out_domain"]
    checked = 0
    for folder in run_dirs:
        metrics = json.loads((folder / "metrics.json").read_text())
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        label = label_of(cfg["model"], cfg)
        for g in metrics["groups"]:
            compressed = "@" in g["setting"] and not g["setting"].startswith("none@")
            if g["mode"] not in ("full", "rag") or compressed:
                continue
            table = outside if metrics["domain"] == "out" else inside
            context = "full" if g["mode"] == "full" else f"RAG ({g['setting']})"
            header = f"{g['length'] // 1024}k"
            value = table.value(header, task=metrics["task"], model=label, context=context)
            assert value == g["subem"]
            checked += 1
    assert checked == 15  # every full, reference and RAG group


def test_in_domain_summary_averages_lengths_and_has_gold_none_rows(report):
    table = report.tables["in_domain"]
    assert table.columns == ["model", "context", "nq", "hotpotqa", "synthetic", "mean"]
    assert table.value("nq", model=A, context="full") == pytest.approx(0.45)
    assert table.value("hotpotqa", model=A, context="full") == pytest.approx(0.40)
    assert table.value("synthetic", model=A, context="full") == pytest.approx(0.60)
    assert table.value("mean", model=A, context="full") == pytest.approx((0.45 + 0.4 + 0.6) / 3)
    assert table.value("nq", model=A, context="gold only") == 0.80
    assert table.value("nq", model=A, context="no context") == 0.10
    assert table.value("nq", model=B, context="gold only") == 0.60
    assert table.value("nq", model=FT, context="full") == pytest.approx(0.55)
    # B has no gold run of hotpotqa: missing, never zero, and the row mean is missing too
    assert table.value("hotpotqa", model=B, context="gold only") is None
    assert table.value("mean", model=B, context="gold only") is None
    # B's nq average covers only 1k: marked
    row = table.rows.index(table.find(model=B, context="full")[0])
    assert table.marks[(row, 2)] == "*"
    assert table.formatted()[row][2] == "30.0*"


def test_missing_run_is_shown_as_missing_not_zero(report, written):
    table = report.tables["in_domain_lengths"]
    assert table.value("2k", task="nq", model=B, context="full") is None
    assert table.value("1k", task="nq", model=B, context="full") == 0.30
    md = (written / "report.md").read_text()
    assert f"| nq | {B} | full | 30.0 | {MISSING} |" in md
    html = (written / "report.html").read_text()
    row = re.search(rf"<tr><td>nq</td><td>{B}</td><td>full</td>(.*?)</tr>", html).group(1)
    assert '<td class="num">30.0</td>' in row
    assert f'<td class="missing">{MISSING}</td>' in row
    assert ">0.0<" not in row


def test_out_of_domain_table_puts_rag_beside_full(report):
    table = report.tables["out_domain"]
    assert table.columns == ["task", "model", "context", "4k", "8k"]
    assert table.value("4k", task="loong", model=A, context="RAG (bm25)") == 0.45
    assert table.value("4k", task="loong", model=A, context="RAG (dense)") == 0.40
    assert table.value("8k", task="loong", model=A, context="RAG (bm25)") is None
    # B has no loong run at all: its full-context row is there, every cell missing
    assert table.find(task="loong", model=B, context="full")[0][3:] == [None, None]


def test_compression_relative_drop(report):
    scores = report.tables["compression_scores"]
    assert scores.value("uncompressed", task="synthetic", model=A, method="snapkv") == 0.60
    assert scores.value("0.75", task="synthetic", model=B, method="snapkv") is None
    drop = report.tables["relative_drop"]
    assert drop.columns[-2:] == ["0.5", "0.75"]
    assert drop.value("0.5", model=A, method="snapkv") == pytest.approx(-25.0)
    assert drop.value("0.75", model=A, method="snapkv") == pytest.approx(-50.0)
    assert drop.value("0.5", model=B, method="snapkv") == pytest.approx(0.0)
    assert drop.value("0.75", model=B, method="snapkv") is None
    average = report.tables["average_drop"]
    assert average.value("0.5", method="snapkv") == pytest.approx(-12.5)
    assert average.value("0.75", method="snapkv") == pytest.approx(-50.0)
    assert format_cell(-12.5, "signed") == "-12.5"
    kv = report.tables["kv_kept"]
    assert kv.value("0.75", method="snapkv") == pytest.approx(0.25)


def test_finetune_gain_against_base(report):
    table = report.tables["finetune_gain"]
    nq = table.find(variant=FT, task="nq")[0]
    assert nq[1] == A
    assert table.value("gain", variant=FT, task="nq") == pytest.approx(0.10)
    assert table.value("gain", variant=FT, task="loong") == pytest.approx(-0.05)
    # the variant has no hotpotqa run: base score shown, gain missing
    assert table.value("gain", variant=FT, task="hotpotqa") is None


def test_plots_exist_and_are_pngs(report, written):
    keys = {"score_vs_length", "full_vs_rag", "score_vs_ratio", "finetune_gain"}
    assert set(report.plots) == keys
    for key, plot in report.plots.items():
        assert plot.path is not None, (key, plot.note)
        data = (written / f"{key}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
    md = (written / "report.md").read_text()
    assert "![Score vs compression ratio](score_vs_ratio.png)" in md


def test_html_is_self_contained(written):
    html = (written / "report.html").read_text()
    links = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html, flags=re.I)
    assert links and all(link.startswith("data:") for link in links), links
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower()
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) == 4
    assert "<style>" in html
    tables = json.loads((written / "tables.json").read_text())
    assert tables["relative_drop"]["rows"][0][4] == pytest.approx(-25.0)


def test_empty_plots_are_skipped_with_a_note(tmp_path):
    run = write_run(
        tmp_path / "only-gold", "nq", "in", A, {}, [("gold", 0, "", 0.5), ("none", 0, "", 0.1)]
    )
    out = tmp_path / "report"
    write_report([run], out)
    md = (out / "report.md").read_text()
    assert "**Score vs compression ratio**: No compression runs" in md
    assert "**Long-context (full) vs RAG**: No RAG runs" in md
    assert "**In- vs out-of-domain gain of fine-tuned variants**: No fine-tuned variant" in md
    assert not list(out.glob("*.png"))
    html = (out / "report.html").read_text()
    assert '<p class="skipped">Score vs context length: No full-context' in html
    assert "<img" not in html


def test_base_mapping_and_missing_base_note(run_dirs, tmp_path):
    report = build_report(load_runs(run_dirs), tmp_path, base={FT: B})
    gains = report.tables["finetune_gain"]
    assert gains.value("base", variant=FT, task="nq") == B
    assert gains.value("lengths", variant=FT, task="nq") == "1k"  # B has no 2k run
    assert gains.value("gain", variant=FT, task="nq") == pytest.approx(0.60 - 0.30)
    lonely = write_run(
        tmp_path / "lonely", "nq", "in", "x/ft", {"base_model": "x/base"}, [("full", 1024, "", 0.5)]
    )
    report = build_report(load_runs([lonely]), tmp_path / "r2")
    assert "finetune_gain" not in report.tables
    assert "no run of its base model 'x/base'" in report.plots["finetune_gain"].note
    assert parse_base_pairs(["a=b", "c = d"]) == {"a": "b", "c": "d"}
    with pytest.raises(ValueError, match="VARIANT=BASE"):
        parse_base_pairs(["ab"])


def test_missing_file_names_folder_and_file(run_dirs, tmp_path):
    broken = write_run(tmp_path / "broken", "nq", "in", A, {}, [("full", 1024, "", 0.5)])
    (broken / "metrics.json").unlink()
    with pytest.raises(RunFolderError, match=r"broken: missing metrics\.json"):
        load_runs([run_dirs[0], broken])
    with pytest.raises(RunFolderError, match="run folder not found"):
        load_runs([tmp_path / "nowhere"])


def test_partial_last_prediction_line_is_skipped_without_changing_the_file(tmp_path):
    run = write_run(tmp_path / "r", "nq", "in", A, {}, [("full", 1024, "", 0.5)])
    path = run / "predictions.jsonl"
    path.write_text(path.read_text() + '{"id": "cut')
    before = path.read_bytes()
    assert len(load_runs([run])[0].predictions) == 1
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("mode", "setting", "expected"),
    [
        ("full", "", ("full", "", 0.0)),
        ("full", "none@0", ("full", "", 0.0)),
        ("full", "snapkv@0.5", ("compressed", "snapkv", 0.5)),
        ("full", "snapkv@0", ("full", "", 0.0)),
        ("rag", "bm25", ("rag", "bm25", 0.0)),
        ("gold", "", ("gold", "", 0.0)),
        ("full", "weird", ("other", "weird", 0.0)),
    ],
)
def test_parse_setting(mode, setting, expected):
    s = parse_setting(mode, setting)
    assert (s.context, s.method, s.ratio) == expected


def test_html_renders_in_headless_chromium(written, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("headless Chromium not installed (/usr/bin/chromium; apt-get install chromium)")
    page = render_page(written / "report.html", chromium, tmp_path / "profile")
    assert page.errors == [], page.errors
    assert page.requests == [], f"the page fetched external resources: {page.requests}"
    assert page.dom["images"] == 4
    assert page.dom["data_images"] == 4
    assert page.dom["broken_images"] == [], "some embedded images did not decode"
    for heading in (
        "In-domain tasks",
        "Out-of-domain tasks",
        "Robustness to KV-cache compression",
        "Fine-tuned variants",
    ):
        assert heading in page.dom["headings"]
    assert "In-domain: primary metric (%) per length" in page.dom["headings"]
    assert page.dom["tables"] == len(re.findall("<table", (written / "report.html").read_text()))
    assert page.screenshot.startswith(b"\x89PNG\r\n\x1a\n") and len(page.screenshot) > 10_000


def test_browser_check_catches_errors_and_external_requests(tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("headless Chromium not installed (/usr/bin/chromium; apt-get install chromium)")
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head><body>'
        '<img src="http://example.invalid/a.png" alt="external"><img src="gone.png" alt="gone">'
        '<script>console.error("boom"); notDefined();</script></body></html>'
    )
    result = render_page(page, chromium, tmp_path / "profile")
    text = "\n".join(result.errors)
    assert "console.error: boom" in text
    assert "notDefined is not defined" in text
    assert "gone.png" in text
    assert result.requests == ["http://example.invalid/a.png"]
    assert sorted(result.dom["broken_images"]) == ["external", "gone"]
