"""The whole study in miniature: data, base evaluation, SFT-AO, GRPO, fine-tuned evaluation, report.

``longctx demo`` runs it on the embedded model and the built-in synthetic data (short contexts,
so that it fits in minutes on two CPU cores); the test suite runs its fast variant on a tiny
random model. Every stage writes the usual run folders under ``out``, and a rerun resumes:
finished evaluations are skipped prediction by prediction, finished training runs are reused.

Stages:
    1. data: synthetic multi-document QA for evaluation (seed 0) and, from another invented world
       (seed 1), in-context-retrieval training data built with BM25 hard negatives;
    2. base model: full context at each length, gold only, no context, RAG (BM25) at a smaller
       budget, and a KV-cache compression sweep (two methods at two ratios, with the reference);
    3. SFT-AO (answer-only supervised fine-tuning, LoRA) and GRPO with the ``answer`` reward;
    4. each fine-tuned model evaluated the same way;
    5. the report (``report.md``, plots and a self-contained ``report.html``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from longctx.eval.config import EvalConfig
from longctx.eval.runner import Reporter, run_eval


class StudyConfig(BaseModel):
    """Settings of the miniature study (defaults: ``make demo`` on 2 CPU cores).

    Attributes:
        model: Base model spec.
        out: Folder of every run of the study.
        n_eval: Synthetic evaluation questions.
        n_train: Synthetic questions for the training data (another invented world).
        lengths: Full-context prompt lengths.
        rag_budget: RAG prompt budget.
        compress: Two compression methods; swept at ``ratios`` at the largest length.
        ratios: Compression ratios.
        sft_steps: SFT-AO optimiser steps.
        grpo_steps: GRPO optimiser steps.
        num_generations: GRPO samples per prompt.
        max_completion_length: GRPO completion limit.
        seed: Seed of the evaluation data and document order.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = "embedded"
    out: str = "runs/demo"
    n_eval: int = 12
    n_train: int = 64
    lengths: list[int] = [384, 512]
    rag_budget: int = 256
    compress: list[str] = ["snapkv", "knorm"]
    ratios: list[float] = [0.5, 0.75]
    sft_steps: int = 30
    grpo_steps: int = 6
    num_generations: int = 4
    max_completion_length: int = 16
    seed: int = 0


Status = Callable[[str], None]
ReporterFactory = Callable[[str], Reporter | None]
TrainProgress = Callable[[str, int], Callable[[dict[str, Any]], None] | None]


def _eval_configs(cfg: StudyConfig, spec: str, label: str, base: str | None) -> list[EvalConfig]:
    out = Path(cfg.out) / "eval"
    common = dict(
        task="synthetic",
        model=spec,
        label=label,
        base_model=base,
        synthetic_n=cfg.n_eval,
        seed=cfg.seed,
    )
    return [
        EvalConfig(
            **common,
            lengths=cfg.lengths,
            modes=["full", "gold", "none", "rag"],
            budgets=[cfg.rag_budget],
            retrievers=["bm25"],
            out=str(out / label),
        ),
        EvalConfig(
            **common,
            lengths=[max(cfg.lengths)],
            modes=["full"],
            compress=["none", *cfg.compress],
            ratios=cfg.ratios,
            out=str(out / f"{label}-compress"),
        ),
    ]


def build_training_data(cfg: StudyConfig, on_status: Status) -> Path:
    """Synthetic training questions from another world (seed+1), as ICR records with BM25
    hard negatives at the study's largest length. Returns the ``train.jsonl`` path."""
    from longctx.data.icr.build import build_icr_dataset
    from longctx.data.icr.config import BuildConfig
    from longctx.data.synthetic import generate_synthetic, write_jsonl

    data = Path(cfg.out) / "data"
    train = data / "icr" / "train.jsonl"
    if train.exists():
        return train
    source = data / "synthetic_train.jsonl"
    source.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(generate_synthetic(n=cfg.n_train, seed=cfg.seed + 1), source)
    on_status(f"building training data from {cfg.n_train} synthetic questions -> {train.parent}")
    build_icr_dataset(
        BuildConfig(
            sources=[{"format": "synthetic", "path": str(source)}],
            retriever="bm25",
            max_tokens=max(cfg.lengths),
            tokenizer=cfg.model,
            seed=cfg.seed,
            validation_fraction=0.0,
            out=str(train.parent),
        )
    )
    return train


def train_variants(
    cfg: StudyConfig, train: Path, on_status: Status, progress: TrainProgress | None = None
) -> dict[str, Path]:
    """SFT-AO and GRPO (``answer`` reward) from the base model; finished runs are reused."""
    from longctx.train.config import SFTConfig
    from longctx.train.grpo import train_grpo
    from longctx.train.grpo_config import GRPOConfig
    from longctx.train.sft import train_sft

    root = Path(cfg.out) / "train"
    variants: dict[str, Path] = {}
    sft_out = root / "sft-ao"
    if not (sft_out / "final").exists():
        on_status(f"SFT-AO: {cfg.sft_steps} steps of LoRA on answer-only targets")
        train_sft(
            SFTConfig(
                model=cfg.model,
                data=str(train),
                target_format="answer",
                out=str(sft_out),
                max_steps=cfg.sft_steps,
                lr=3e-4,
                batch_size=2,
                logging_steps=1,
                save_steps=max(cfg.sft_steps, 1),
                seed=cfg.seed,
            ),
            on_log=progress("SFT-AO", cfg.sft_steps) if progress else None,
        )
    variants["sft-ao"] = sft_out / "final"
    grpo_out = root / "grpo-answer"
    if not (grpo_out / "final").exists():
        on_status(f"GRPO: {cfg.grpo_steps} steps, reward 'answer', G={cfg.num_generations}")
        train_grpo(
            GRPOConfig(
                model=cfg.model,
                data=str(train),
                reward="answer",
                out=str(grpo_out),
                max_steps=cfg.grpo_steps,
                num_generations=cfg.num_generations,
                max_completion_length=cfg.max_completion_length,
                lr=1e-4,
                logging_steps=1,
                save_steps=max(cfg.grpo_steps, 1),
                seed=cfg.seed,
            ),
            on_log=progress("GRPO", cfg.grpo_steps) if progress else None,
        )
    variants["grpo-answer"] = grpo_out / "final"
    return variants


def run_study(
    cfg: StudyConfig,
    on_status: Status = print,
    reporter: ReporterFactory | None = None,
    train_progress: TrainProgress | None = None,
    loaded: Any = None,
) -> Path:
    """Run every stage of the miniature study and return the path of ``report.html``.

    Args:
        cfg: Study settings.
        on_status: Receives one line per stage.
        reporter: Makes a progress receiver for each evaluation (given its label).
        train_progress: Makes a log receiver for a training run (given its name and steps).
        loaded: The base model already in memory (default: loaded from ``cfg.model``).
    """
    from longctx.models.loader import load_model
    from longctx.report import write_report

    runs: list[Path] = []

    def evaluate(spec: str, label: str, base: str | None, model: Any) -> None:
        for ecfg in _eval_configs(cfg, spec, label, base):
            on_status(f"evaluating {label}: {Path(ecfg.out).name}")
            run_eval(
                ecfg,
                loaded=model,
                reporter=reporter(Path(ecfg.out).name) if reporter else None,
                on_status=on_status,
            )
            runs.append(Path(ecfg.out))

    base_model = loaded or load_model(cfg.model, on_status=on_status)
    evaluate(cfg.model, "base", None, base_model)
    train = build_training_data(cfg, on_status)
    for label, folder in train_variants(cfg, train, on_status, train_progress).items():
        evaluate(str(folder), label, "base", load_model(str(folder), on_status=on_status))
    on_status("writing the report")
    return write_report(runs, Path(cfg.out) / "report")
