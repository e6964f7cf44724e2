"""The typed configuration of one evaluation run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from longctx.data.context import parse_length

# Fields that change what a prediction is; a rerun into the same folder must keep them.
IDENTITY_FIELDS = (
    "task",
    "data",
    "format",
    "model",
    "seed",
    "depth",
    "max_new_tokens",
    "synthetic_n",
)


class EvalConfig(BaseModel):
    """Configuration of ``longctx eval`` (also the run folder's ``config.yaml``).

    Attributes:
        task: Task name (see ``longctx tasks``).
        label: Name of the model/variant in reports (default: the model spec).
        base_model: Label of the model this variant was fine-tuned from (reports show the gain).
        data: Input file or folder; ``None`` for the built-in synthetic data.
        format: Reader name (default: the task's own reader).
        model: Model spec (``embedded``, a folder, a ``.gguf`` file or a hub id); with the
            ``openai`` engine, the model name on the server.
        engine: ``local`` (transformers) or ``openai`` (an OpenAI-compatible server such as vLLM,
            for 7B / 1M-token evaluations on GPUs).
        base_url: Server URL of the ``openai`` engine (``http://host:8000/v1``).
        tokenizer: Tokenizer spec used to count tokens with the ``openai`` engine (default: the
            model name).
        lengths: Prompt lengths in tokens for ``full`` mode (``"1k"`` style strings accepted).
        modes: Any of ``full`` (all documents up to the length), ``gold``, ``none``, ``rag``
            (documents a retriever ranks best, up to each budget).
        limit: Evaluate only the first N examples.
        depth: Gold depth in 0..1; ``None`` shuffles documents with ``seed``.
        seed: Seed for document order and synthetic data.
        max_new_tokens: Generation limit per prediction (default: the task's).
        max_length: Cap on prompt tokens; longer prompts are cut in the middle of the context
            (default: the model's window). For ``document`` tasks this is the evaluated length.
        fill: ``tokens`` fills passage contexts to each length; ``helmet`` uses HELMET's fixed
            passage count per length (the length still bounds the context).
        retrievers: Retrievers of ``rag`` mode.
        budgets: Prompt lengths of ``rag`` mode (default: ``lengths``).
        chunk_tokens: Chunk size when ``rag`` mode splits long documents (LongRAG-style).
        compress: KV-cache compression methods to sweep in ``full`` mode (see ``longctx.compress``).
        ratios: Compression ratios of the sweep (fraction of the cache removed).
        query_aware: Include the question in the compressed pre-fill.
        judge_url: OpenAI-compatible endpoint of the LLM judge (tasks that need one, e.g.
            ``loong_fin``); responses are cached in ``out/judge_cache``.
        judge_model: Model name at ``judge_url``.
        judge_local: A local model spec as judge instead (``self``: the evaluated model).
        shard: ``i/n`` evaluates every n-th example from the i-th (merge with ``longctx merge``).
        out: Run folder.
        synthetic_n: Number of synthetic examples generated when ``data`` is not given.
    """

    model_config = ConfigDict(extra="forbid")

    task: str = "synthetic"
    label: str | None = None
    base_model: str | None = None
    data: str | None = None
    format: str | None = None
    model: str = "embedded"
    engine: Literal["local", "openai"] = "local"
    base_url: str | None = None
    tokenizer: str | None = None
    lengths: list[int] = [1024]
    modes: list[Literal["full", "gold", "none", "rag"]] = ["full"]
    limit: int | None = None
    depth: float | None = None
    seed: int = 0
    max_new_tokens: int | None = None
    max_length: int | None = None
    fill: Literal["tokens", "helmet"] = "tokens"
    retrievers: list[Literal["bm25", "dense", "hybrid"]] = ["bm25"]
    budgets: list[int] = []
    chunk_tokens: int = 2048
    compress: list[str] = []
    ratios: list[float] = [0.0]
    query_aware: bool = False
    judge_url: str | None = None
    judge_model: str | None = None
    judge_local: str | None = None
    shard: str | None = None
    out: str = "runs/eval"
    synthetic_n: int = 50

    @field_validator("lengths", "budgets", mode="before")
    @classmethod
    def _parse_lengths(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            return [parse_length(v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("max_length", mode="before")
    @classmethod
    def _parse_max_length(cls, value: object) -> object:
        return parse_length(value) if isinstance(value, str) else value

    @field_validator("compress", "ratios", "retrievers", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, int | float):
            return [value]
        return value

    @field_validator("compress")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        from longctx.compress import METHODS

        unknown = [m for m in value if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown compression method(s) {unknown}; known: {sorted(METHODS)}")
        return value

    @field_validator("ratios")
    @classmethod
    def _check_ratios(cls, value: list[float]) -> list[float]:
        if any(not 0.0 <= r < 1.0 for r in value):
            raise ValueError("ratios must be in [0, 1)")
        return value

    @field_validator("modes", mode="before")
    @classmethod
    def _parse_modes(cls, value: object) -> object:
        return value.split(",") if isinstance(value, str) else value

    @field_validator("depth")
    @classmethod
    def _check_depth(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError("depth must be between 0 and 1")
        return value
