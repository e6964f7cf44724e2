"""The ``longctx`` command line: parses options and calls the library."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(
    help="longctx: in-context retrieval for long-context LMs, measured honestly.",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Build and inspect data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
train_app = typer.Typer(help="Train models on in-context-retrieval data.", no_args_is_help=True)
app.add_typer(train_app, name="train")
analyze_app = typer.Typer(help="Analyse model behaviour on evaluation runs.", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")
console = Console(stderr=True)


def _setup() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, level=logging.WARNING)],
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


class RichReporter:
    """Shows :func:`longctx.eval.runner.run_eval` progress as a rich progress bar, with the
    running mean of the task's primary score."""

    def __init__(self, progress: Progress, label: str, metric: str | None = None):
        self.progress, self.label, self.metric, self.task = progress, label, metric, None
        self.total, self.n = 0.0, 0

    def start(self, total: int, done: int) -> None:
        self.task = self.progress.add_task(self.label, total=total, completed=done, score="")

    def update(self, record: dict[str, Any]) -> None:
        scores = record["scores"]
        metric = self.metric if self.metric in scores else next(iter(scores), None)
        value = scores.get(metric) if metric else None
        if isinstance(value, int | float):
            self.total, self.n = self.total + value, self.n + 1
        mean = f"{metric}={100 * self.total / self.n:.1f}" if self.n else ""
        self.progress.update(self.task, advance=1, score=mean)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[score]}"),
        console=console,
    )


_FIXED = ("mode", "length", "setting", "n", "prompt_tokens", "truncated")


def print_metrics(metrics: dict[str, Any], title: str = "") -> None:
    """Print the groups of a metrics dict as a table: one row per (mode, length, setting)."""
    from longctx.data.context import format_length

    rows = metrics["groups"]
    primary = metrics.get("metric", "subem")
    names = sorted(
        {
            k
            for r in rows
            for k, v in r.items()
            if k not in _FIXED and isinstance(v, int | float) and not isinstance(v, bool)
        },
        key=lambda k: (k != primary, k),
    )
    with_setting = any(r.get("setting") for r in rows)
    table = Table(title=title or f"{metrics['task']} · {metrics['model']} (scores in %)")
    cols = [
        "mode",
        "length",
        *(["setting"] if with_setting else []),
        "n",
        *names,
        "prompt tokens",
        "truncated",
    ]
    for col in cols:
        table.add_column(col, justify="left" if col in ("mode", "setting") else "right")
    for r in rows:
        length = format_length(r["length"]) if r["length"] else "-"
        scores = [_cell(k, r.get(k)) for k in names]
        setting = [r.get("setting") or "-"] if with_setting else []
        table.add_row(
            r["mode"],
            length,
            *setting,
            str(r["n"]),
            *scores,
            f"{r['prompt_tokens']:.0f}",
            str(r["truncated"]),
        )
    _table_console().print(table)


def _table_console() -> Console:
    """stdout console; wide when not a terminal (logs, pipes) so tables stay readable."""
    import sys

    return Console() if sys.stdout.isatty() else Console(width=200)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and 0.0 <= value <= 1.0 and not name.endswith(("_count", "_n")):
        return f"{100 * value:.1f}"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


@app.command("eval")
def eval_cmd(
    task: Annotated[str, typer.Argument(help="Task name (see `longctx tasks`).")] = "synthetic",
    data: Annotated[str | None, typer.Option(help="Input file or folder.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Reader (default: the task).")] = None,
    model: Annotated[
        str | None, typer.Option(help="embedded, a folder, a .gguf, or a hub id.")
    ] = None,
    lengths: Annotated[str | None, typer.Option(help="Prompt lengths, e.g. 1k,2k,4k.")] = None,
    mode: Annotated[str | None, typer.Option(help="Comma-separated: full, gold, none.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N examples.")] = None,
    depth: Annotated[float | None, typer.Option(help="Gold depth 0..1 (default: shuffle).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for document order.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Generation limit.")] = None,
    max_length: Annotated[
        str | None, typer.Option(help="Cap on prompt tokens (middle truncation), e.g. 4k.")
    ] = None,
    fill: Annotated[str | None, typer.Option(help="tokens (default) or helmet.")] = None,
    shard: Annotated[
        str | None, typer.Option(help="i/n: every n-th example from the i-th.")
    ] = None,
    retriever: Annotated[
        str | None, typer.Option(help="RAG retrievers (mode rag): bm25, dense, hybrid.")
    ] = None,
    budget: Annotated[str | None, typer.Option(help="RAG prompt budgets, e.g. 4k,8k.")] = None,
    chunk_tokens: Annotated[
        int | None, typer.Option(help="RAG chunk size for long documents.")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="local or openai.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible server URL (engine openai).")
    ] = None,
    tokenizer: Annotated[
        str | None, typer.Option(help="Tokenizer spec for token counts (engine openai).")
    ] = None,
    judge_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible URL of the LLM judge.")
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="Judge model name.")] = None,
    judge_local: Annotated[
        str | None, typer.Option(help="Local judge model spec (self = the evaluated model).")
    ] = None,
    compress: Annotated[
        str | None, typer.Option(help="KV compression methods to sweep, e.g. snapkv,knorm.")
    ] = None,
    ratios: Annotated[str | None, typer.Option(help="Compression ratios, e.g. 0,0.5,0.9.")] = None,
    query_aware: Annotated[
        bool | None, typer.Option("--query-aware/--query-agnostic", help="Question in pre-fill.")
    ] = None,
    out: Annotated[str | None, typer.Option(help="Run folder.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value override.")] = None,
) -> None:
    """Evaluate a model on a task at several context lengths (full / gold / none modes)."""
    _setup()
    from longctx.config import load_config
    from longctx.eval.config import EvalConfig
    from longctx.eval.runner import run_eval
    from longctx.eval.tasks import get_task

    cfg = load_config(
        EvalConfig,
        config,
        set_ or [],
        task=task,
        data=data,
        format=fmt,
        model=model,
        lengths=lengths,
        modes=mode,
        limit=limit,
        depth=depth,
        seed=seed,
        max_new_tokens=max_new_tokens,
        max_length=max_length,
        fill=fill,
        shard=shard,
        retrievers=retriever,
        budgets=budget,
        chunk_tokens=chunk_tokens,
        engine=engine,
        base_url=base_url,
        tokenizer=tokenizer,
        judge_url=judge_url,
        judge_model=judge_model,
        judge_local=judge_local,
        compress=compress,
        ratios=ratios,
        query_aware=query_aware,
        out=out,
    )
    with _progress() as progress:
        metrics = run_eval(
            cfg,
            reporter=RichReporter(progress, f"{cfg.task} · {cfg.model}", get_task(cfg.task).metric),
            on_status=console.print,
        )
    print_metrics(metrics)
    console.print(f"run folder: {cfg.out}")


@app.command("demo")
def demo_cmd(
    out: Annotated[str, typer.Option(help="Folder of every run of the study.")] = "runs/demo",
    model: Annotated[str, typer.Option(help="Base model spec.")] = "embedded",
    config: Annotated[Path | None, typer.Option(help="YAML with StudyConfig fields.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value override.")] = None,
) -> None:
    """The whole study in miniature on built-in synthetic data: base model full / gold / none /
    RAG / KV compression, SFT-AO and GRPO, the fine-tuned models evaluated the same way, and the
    report (its path is printed last)."""
    _setup()
    from longctx.config import load_config
    from longctx.study import StudyConfig, run_study

    cfg = load_config(StudyConfig, config, set_ or [], out=out, model=model)
    console.print(
        f"[bold]longctx demo[/bold]: the study in miniature with {cfg.model} -> {cfg.out}"
    )
    with _progress() as progress:

        def train_progress(name: str, steps: int):
            bar = progress.add_task(name, total=steps, score="")

            def on_log(entry: dict[str, Any]) -> None:
                shown = {k: entry[k] for k in ("loss", "reward") if isinstance(entry.get(k), float)}
                text = " ".join(f"{k}={v:.3f}" for k, v in shown.items())
                progress.update(bar, completed=entry.get("step", 0), score=text)

            return on_log

        report = run_study(
            cfg,
            on_status=console.print,
            reporter=lambda label: RichReporter(progress, label, "subem"),
            train_progress=train_progress,
        )
    for folder in sorted((Path(cfg.out) / "eval").iterdir()):
        metrics_path = folder / "metrics.json"
        if metrics_path.exists():
            import json

            print_metrics(json.loads(metrics_path.read_text()), title=folder.name)
    typer.echo(f"report: {report}")


@app.command("merge")
def merge_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Shard run folders.")],
    out: Annotated[Path, typer.Option(help="Merged run folder.")],
) -> None:
    """Merge the run folders of `longctx eval --shard i/n` into one run folder."""
    _setup()
    from longctx.eval.shard import merge_runs

    metrics = merge_runs(run_dirs, out)
    print_metrics(metrics)
    console.print(f"merged {len(run_dirs)} shards into {out}")


@app.command("compare")
def compare_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders of compression sweeps.")],
    out: Annotated[
        Path | None, typer.Option(help="Write compare.json and compare.md here.")
    ] = None,
) -> None:
    """Per-task scores and relative drop (%) of each compression method/ratio against none."""
    from longctx.eval.compare import compare_runs

    result = compare_runs(run_dirs, out)
    table = Table(title="robustness to KV-cache compression (relative drop vs. uncompressed)")
    for col in ("model", "task", "length", "setting", "score %", "reference %", "drop %"):
        table.add_column(col)
    for r in result["rows"]:
        ref = "—" if r["reference"] is None else f"{100 * r['reference']:.1f}"
        drop = "—" if r["drop_pct"] is None else f"{r['drop_pct']:+.1f}"
        table.add_row(
            r["model"],
            r["task"],
            str(r["length"]),
            r["setting"],
            f"{100 * r['score']:.1f}",
            ref,
            drop,
        )
    for a in result["average"]:
        drop = "—" if a["drop_pct"] is None else f"{a['drop_pct']:+.1f}"
        table.add_row(a["model"], "average", "", a["setting"], "", "", drop)
    _table_console().print(table)


@app.command("report")
def report_cmd(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="Run folders (config.yaml, predictions.jsonl, metrics.json)."),
    ],
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("runs/report"),
    base: Annotated[
        list[str] | None,
        typer.Option(
            "--base", help="VARIANT=BASE: base model of a fine-tuned variant (label or spec)."
        ),
    ] = None,
) -> None:
    """Tables, plots, report.md and a self-contained report.html over evaluation run folders."""
    _setup()
    from longctx.report import parse_base_pairs, write_report

    path = write_report(run_dirs, out, base=parse_base_pairs(base or []))
    console.print(f"report: {path}\nmarkdown: {out / 'report.md'}")


@analyze_app.command("attention")
def analyze_attention_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run folder of `longctx eval`.")],
    layers: Annotated[str, typer.Option(help="Layers a:b (a..b-1), or all.")] = "all",
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default RUN_DIR/attention).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model spec (default: the run's).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N predictions.")] = None,
    metric: Annotated[str, typer.Option(help="Score taken as correctness.")] = "subem",
) -> None:
    """Rank each prediction's documents by attention: NDCG@10 vs gold, Pearson with correctness."""
    _setup()
    import yaml

    from longctx.analysis.attention import analyze_attention
    from longctx.models.loader import load_model

    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: missing config.yaml (not a run folder?)")
    spec = model or yaml.safe_load((run_dir / "config.yaml").read_text())["model"]
    loaded = load_model(spec, on_status=console.print)
    with _progress() as progress:
        bar = progress.add_task("attention", total=None, score="")
        result = analyze_attention(
            loaded,
            run_dir,
            layers=layers,
            out=out or run_dir / "attention",
            limit=limit,
            metric=metric,
            on_progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )
    summary = result["summary"]
    table = Table(title=f"attention over documents · {spec} · {summary['n_analyzed']} predictions")
    for col in ("layers", "mean NDCG@10", "Pearson r (NDCG@10, correct)", "p"):
        table.add_column(col)
    for name, row in summary["ranges"].items():
        cells = (row["mean_ndcg@10"], row["pearson_r"], row["pearson_p"])
        table.add_row(name, *("—" if v is None else f"{v:.3f}" for v in cells))
    _table_console().print(table)
    for name, row in summary["ranges"].items():
        for note in row["notes"]:
            console.print(f"{name}: {note}")
    for reason, n in summary["skipped"].items():
        console.print(f"skipped {n}: {reason}")
    console.print(f"analysis: {result['output']}")


@app.command("retrieve-eval")
def retrieve_eval_cmd(
    task: Annotated[str, typer.Argument(help="Task whose examples mark gold documents.")],
    data: Annotated[str | None, typer.Option(help="Input file or folder.")] = None,
    retriever: Annotated[str, typer.Option(help="Retrievers to compare.")] = "bm25,dense,hybrid",
    k: Annotated[str, typer.Option(help="Cut-offs for recall@k.")] = "1,5,10",
    limit: Annotated[int | None, typer.Option(help="Only the first N examples.")] = None,
    corpus: Annotated[
        bool, typer.Option("--corpus/--per-example", help="One corpus of all documents.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write retrieval.json here.")] = None,
) -> None:
    """Recall@k and NDCG@10 of gold documents for each retriever (HotpotQA, NQ, synthetic)."""
    _setup()
    import json

    from longctx.eval.tasks import get_task
    from longctx.retrieval.quality import evaluate_retrievers

    examples = (
        get_task(task).load(data) if data or task != "synthetic" else get_task(task).load(None)
    )
    examples = [ex for ex in examples[:limit] if ex.gold_documents]
    names = tuple(n.strip() for n in retriever.split(",") if n.strip())
    ks = tuple(int(x) for x in k.split(","))
    with _progress() as progress:
        bar = progress.add_task("retrieval", total=len(examples) * len(names), score="")
        result = evaluate_retrievers(
            examples,
            names=names,
            ks=ks,
            corpus=corpus,
            on_progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )
    table = Table(title=f"retrieval of gold documents · {task} · {len(examples)} questions")
    cols = [f"recall@{x}" for x in ks] + ["ndcg@10"]
    for col in ("retriever", *cols):
        table.add_column(col)
    for name, row in result.items():
        table.add_row(name, *(f"{100 * row[c]:.1f}" for c in cols))
    _table_console().print(table)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "retrieval.json").write_text(json.dumps(result, indent=2))


@data_app.command("build")
def data_build(
    config: Annotated[
        Path | None, typer.Option(help="YAML build config (recipes/data_*.yaml).")
    ] = None,
    out: Annotated[str | None, typer.Option(help="Output folder.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value override.")] = None,
) -> None:
    """Build ICR training data: train.jsonl, validation.jsonl, data_card.json."""
    _setup()
    from longctx.config import load_config
    from longctx.data.icr import BuildConfig, build_icr_dataset

    cfg = load_config(BuildConfig, config, set_ or [], out=out)
    with _progress() as progress:
        task = progress.add_task("data build", total=None, score="")
        report = build_icr_dataset(
            cfg,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            on_status=console.print,
        )
    c = report.counts
    dropped = {k: v for k, v in c.items() if k.startswith("dropped_")}
    console.print(
        f"kept {c.get('kept', 0)} of {c.get('read', 0)} questions "
        f"({c.get('train', 0)} train, {c.get('validation', 0)} validation); dropped {dropped}; "
        f"relabel {report.relabel}"
    )
    console.print(f"data: {report.out} (card: {report.out / 'data_card.json'})")


def _show_log(line: dict[str, Any]) -> None:
    console.print(
        " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in line.items())
    )


@train_app.command("sft")
def train_sft_cmd(
    config: Annotated[Path, typer.Option(help="YAML recipe, e.g. recipes/cpu_tiny.yaml.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint.")
    ] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value override.")] = None,
) -> None:
    """Supervised fine-tuning on ICR data (answer-only SFT-AO by default)."""
    _setup()
    from longctx.config import load_config
    from longctx.train.config import SFTConfig
    from longctx.train.sft import train_sft

    cfg = load_config(SFTConfig, config, set_ or [], resume=resume or None)
    final = train_sft(cfg, on_log=_show_log)
    console.print(f"final model: {final} (use --model {final})")
    console.print(f"log: {Path(cfg.out) / 'train_log.jsonl'}")


@train_app.command("grpo")
def train_grpo_cmd(
    config: Annotated[Path, typer.Option(help="YAML recipe (a GRPOConfig).")],
    reward: Annotated[
        str | None, typer.Option(help="Reward: answer, ids, ids_content, ids_quotes or judge.")
    ] = None,
    train_compress: Annotated[
        str | None,
        typer.Option("--train-compress", help="Compression-aware training with this KV method."),
    ] = None,
    train_ratio: Annotated[
        float | None, typer.Option("--train-ratio", help="Compression ratio (fraction removed).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value override.")] = None,
) -> None:
    """GRPO with an in-context-retrieval reward (optionally on a compressed KV cache)."""
    _setup()
    from longctx.config import load_config
    from longctx.train.grpo import train_grpo
    from longctx.train.grpo_config import GRPOConfig

    cfg = load_config(
        GRPOConfig,
        config,
        set_ or [],
        reward=reward,
        train_compress=train_compress,
        train_ratio=train_ratio,
        resume=resume or None,
    )
    keys = ("loss", "reward", "reward_std", "kl", "compress/kept_ratio", "seconds")

    def show(line: dict[str, Any]) -> None:
        shown = " ".join(f"{k}={line[k]:.4g}" for k in keys if k in line)
        console.print(f"step {line.get('step')}: {shown}")

    final = train_grpo(cfg, on_log=show)
    console.print(f"final model: {final} (evaluate with: longctx eval --model {final})")


@app.command("tasks")
def tasks_cmd() -> None:
    """List the registered tasks with their metric, domain and context style."""
    from longctx.eval.tasks import TASKS, get_task

    get_task("synthetic")  # imports every task module
    table = Table(title="longctx tasks")
    for col in ("task", "metric", "domain", "context", "max new tokens", "description"):
        table.add_column(col)
    for name in sorted(TASKS):
        t = TASKS[name]
        table.add_row(name, t.metric, t.domain, t.context, str(t.max_new_tokens), t.description)
    _table_console().print(table)


@data_app.command("synthetic")
def data_synthetic(
    out: Annotated[Path, typer.Option(help="Output jsonl.")],
    n: Annotated[int, typer.Option(help="Number of examples.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    distractors: Annotated[int, typer.Option(help="Distractors per example.")] = 40,
) -> None:
    """Write built-in synthetic multi-document QA (fictional entities) as jsonl."""
    from longctx.data.synthetic import generate_synthetic, write_jsonl

    write_jsonl(generate_synthetic(n=n, seed=seed, n_distractors=distractors), out)
    console.print(f"wrote {n} examples to {out}")


def main() -> None:
    """Entry point: user errors (bad config, data, paths) print one line, not a traceback."""
    from longctx.config import ConfigError
    from longctx.data.errors import DataError

    try:
        app(standalone_mode=False)
    except (ConfigError, DataError, FileNotFoundError, ValueError, KeyError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise SystemExit(2) from None
    except (KeyboardInterrupt, click.exceptions.Abort):
        console.print("interrupted: predictions made so far are kept; rerun to resume")
        raise SystemExit(130) from None
    except click.exceptions.ClickException as err:
        err.show()
        raise SystemExit(err.exit_code) from None
    except click.exceptions.Exit as err:
        raise SystemExit(err.exit_code) from None


if __name__ == "__main__":
    main()
