"""The typed configuration of ``longctx data build`` (in-context-retrieval training data)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from longctx.data.context import parse_length

#: Source formats: the readers of :mod:`longctx.data.readers`, plus ``2wiki`` (2WikiMultihopQA,
#: Ho et al., 2020), which uses HotpotQA's official format and is read like it.
SOURCE_FORMATS = ("hotpotqa", "2wiki", "nq", "kilt", "synthetic")


class SourceSpec(BaseModel):
    """One input file of QA examples.

    Attributes:
        format: One of :data:`SOURCE_FORMATS`.
        path: The file; for ``synthetic`` it may be left out to generate the built-in data.
        limit: Keep only the first N examples (for ``synthetic`` without a path: how many to
            generate, 200 by default).
    """

    model_config = ConfigDict(extra="forbid")

    format: Literal["hotpotqa", "2wiki", "nq", "kilt", "synthetic"]
    path: str | None = None
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _need_path(self) -> SourceSpec:
        if self.path is None and self.format != "synthetic":
            raise ValueError(f"source of format {self.format!r} needs a path")
        return self


class BuildConfig(BaseModel):
    """Configuration of :func:`longctx.data.icr.build_icr_dataset` (also ``data_card.json``).

    Attributes:
        sources: The QA files to read (their gold passages are the positives).
        corpus: Optional jsonl of passages ``{"id"?, "title", "text"}`` to retrieve negatives
            from; by default every passage of every source, split into the 100-word passages of
            DPR (Karpukhin et al., 2020).
        retriever: Ranks corpus passages against each question (``bm25``, ``dense``, ``hybrid``).
        index_dir: Folder to cache the retrieval index in (reused when it matches the corpus).
        negatives: At most this many hard negatives per question; ``None`` fills the budget.
        min_words: Negatives shorter than this many words are dropped (gold never is).
        max_tokens: Prompt budget in tokens of ``tokenizer`` (chat template and the longest
            variant instruction included); ``"1k"`` style strings accepted.
        tokenizer: Model spec whose tokenizer counts tokens (``embedded``, a folder, a hub id).
        seed: Seed of document order, gold placement and depth draws.
        validation_fraction: Share of questions (by hash of the question text) in validation.
        relabel_threshold: Fuzzy score from which a negative is promoted to gold.
        judge_url: OpenAI-compatible server of the optional stage-2 judge.
        judge_model: Model name of the judge on that server.
        out: Output folder (``train.jsonl``, ``validation.jsonl``, ``data_card.json``).
    """

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceSpec] = Field(min_length=1)
    corpus: str | None = None
    retriever: Literal["bm25", "dense", "hybrid"] = "bm25"
    index_dir: str | None = None
    negatives: int | None = Field(default=None, ge=0)
    min_words: int = Field(default=10, ge=0)
    max_tokens: int = 1024
    tokenizer: str = "embedded"
    seed: int = 0
    validation_fraction: float = Field(default=0.05, ge=0.0, le=1.0)
    relabel_threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    judge_url: str | None = None
    judge_model: str | None = None
    out: str = "runs/icr_data"

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _parse_max_tokens(cls, value: object) -> object:
        return parse_length(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _judge_pair(self) -> BuildConfig:
        if self.judge_url and not self.judge_model:
            raise ValueError("judge_url needs judge_model")
        return self
