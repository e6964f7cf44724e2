"""LLM judges (an OpenAI-compatible server or a local model) and parsers for their verdicts.

:meth:`Judge.grade` never guesses: a failed call is kept as ``error``, an answer the parser cannot
read as ``raw`` with ``parsed=None``. :class:`OpenAIJudge` caches answers on disk, one JSON file
per sha256 of (model, prompt, sampling parameters), so a re-run re-sends nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longctx.models.openai_engine import APIError, post_json

LOONG_JUDGE_PROMPT = """You are grading an answer to a question about long financial documents.

[Question]
{question}

[Reference answer]
{gold}

[Answer to grade]
{prediction}

Compare it with the reference answer for accuracy (do its facts and figures agree?),
hallucination (does it claim things the reference does not support?) and completeness (does it
cover every part of the reference?). Wording and formatting do not matter, only content.

Give one score from 0 to 100: 100 is fully correct and complete, 0 is wrong or missing. Reply
with one short sentence of justification, then the score in double square brackets on its own
line, for example:
[[70]]"""


class JudgeError(RuntimeError):
    """A judge could not produce an answer (network failure, server error, prompt too long)."""


@dataclass
class JudgeResult:
    """One graded prompt.

    Attributes:
        raw: The judge's text, or ``None`` when the call failed.
        parsed: The parser's value, or ``None`` when the call failed or the text was unparseable.
        error: Why the call (or the parser) failed, else ``None``.
        cached: The answer came from the on-disk cache, not a new request.
    """

    raw: str | None
    parsed: Any | None
    error: str | None = None
    cached: bool = False

    @property
    def unparsed(self) -> bool:
        """An answer came back but the parser could not read it."""
        return self.raw is not None and self.parsed is None and self.error is None


class Judge(ABC):
    """Turns a grading prompt into text; subclasses implement :meth:`grade_text`."""

    @abstractmethod
    def grade_text(self, prompt: str) -> str:
        """The judge's raw answer to a prompt; raises :class:`JudgeError` when there is none."""

    def _grade_raw(self, prompt: str) -> tuple[str, bool]:
        """The raw answer and whether it came from a cache."""
        return self.grade_text(prompt), False

    def grade(self, prompt: str, parse: Callable[[str], Any | None]) -> JudgeResult:
        """Ask the judge and parse its answer, recording failures instead of guessing.

        Args:
            prompt: The full grading prompt.
            parse: Returns the parsed verdict, or ``None`` when the text is unreadable.
        """
        try:
            raw, cached = self._grade_raw(prompt)
        except JudgeError as err:
            return JudgeResult(raw=None, parsed=None, error=str(err))
        try:
            parsed = parse(raw)
        except Exception as err:  # a parser bug must not lose the raw answer
            return JudgeResult(raw, None, f"parser failed: {type(err).__name__}: {err}", cached)
        return JudgeResult(raw=raw, parsed=parsed, error=None, cached=cached)


class OpenAIJudge(Judge):
    """A judge behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: Model name the server expects.
        api_key: Bearer token (default: ``$OPENAI_API_KEY`` when set).
        timeout: Seconds per request.
        max_retries: Retries on connection errors, timeouts, HTTP 429 and 5xx.
        backoff: Base of the exponential backoff, in seconds.
        cache_dir: Folder for cached answers (``None``: no cache).
        temperature: Sampling temperature (0: deterministic, which makes caching sound).
        max_tokens: Answer length cap sent to the server (``None``: not sent).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60,
        max_retries: int = 4,
        backoff: float = 1.0,
        cache_dir: str | Path | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        # Sampling parameters sent with every request (and part of the cache key).
        self.params: dict[str, Any] = {"temperature": temperature}
        if max_tokens is not None:
            self.params["max_tokens"] = max_tokens

    def cache_key(self, prompt: str) -> str:
        """sha256 of the model, prompt and parameters."""
        blob = json.dumps([self.model, prompt, self.params], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _read_cache(self, prompt: str) -> tuple[Path | None, str | None]:
        if self.cache_dir is None:
            return None, None
        path = self.cache_dir / f"{self.cache_key(prompt)}.json"
        try:
            return path, json.loads(path.read_text())["response"]
        except (ValueError, KeyError, OSError):
            return path, None  # absent, or damaged: asked again and overwritten

    def _write_cache(self, path: Path, prompt: str, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"model": self.model, "prompt": prompt, "params": self.params, "response": text}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(entry, handle, ensure_ascii=False)
        os.replace(tmp, path)  # atomic: readers never see half an entry

    def _grade_raw(self, prompt: str) -> tuple[str, bool]:
        path, hit = self._read_cache(prompt)
        if hit is not None:
            return hit, True
        payload = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        payload.update(self.params)
        url = f"{self.base_url}/chat/completions"
        try:
            body = post_json(
                url, payload, self.api_key, self.timeout, self.max_retries, self.backoff
            )
            text = body["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("no text content")
        except APIError as err:
            raise JudgeError(str(err)) from err
        except (KeyError, IndexError, TypeError) as err:
            raise JudgeError(f"malformed judge answer ({err}): {json.dumps(body)[:300]}") from err
        if path is not None:
            self._write_cache(path, prompt, text)
        return text, False

    def grade_text(self, prompt: str) -> str:
        return self._grade_raw(prompt)[0]


class LocalJudge(Judge):
    """A judge run locally: chat-templated prompt, greedy decoding with ``LocalEngine``.

    Args:
        loaded: The judge model.
        max_new_tokens: Answer length cap.
    """

    def __init__(self, loaded: Any, max_new_tokens: int = 64):
        from longctx.models.generate import LocalEngine

        self.loaded = loaded
        self.engine = LocalEngine(loaded)
        self.max_new_tokens = max_new_tokens

    def render(self, prompt: str) -> str:
        """The prompt as one user turn of the chat template (unchanged without a template)."""
        if not self.loaded.has_chat_template:
            return prompt
        return self.loaded.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def grade_text(self, prompt: str) -> str:
        ids = self.engine.encode(self.render(prompt))
        if len(ids) + self.max_new_tokens > self.loaded.window:
            raise JudgeError(
                f"judge prompt of {len(ids)} tokens + {self.max_new_tokens} new tokens exceeds "
                f"the window of {self.loaded.window}"
            )
        return self.engine.generate_ids(ids, self.max_new_tokens).text.strip()


def make_judge(
    url: str | None,
    model: str | None,
    local_model: Any = None,
    cache_dir: str | Path | None = None,
) -> Judge:
    """Pick a judge: a server when ``url`` is given, else a local model.

    Args:
        url: API root of an OpenAI-compatible server (e.g. ``http://host:8000/v1``).
        model: Model name on that server (required with ``url``).
        local_model: A ``LoadedModel``, or a model spec for ``load_model``.
        cache_dir: On-disk cache for the server judge.

    Raises:
        ValueError: Neither a server (with a model name) nor a local model was given.
    """
    if url:
        if not model:
            raise ValueError("a judge server needs a model name (--judge-model)")
        return OpenAIJudge(url, model, cache_dir=cache_dir)
    if local_model is None:
        raise ValueError("no judge configured: give a server URL and model, or a local model")
    if isinstance(local_model, str):
        from longctx.models.loader import load_model

        local_model = load_model(local_model)
    return LocalJudge(local_model)


_NUM = r"(-?\d+(?:\.\d+)?)"
_NOT_OTHER_SCALE = r"(?![\d.]|\s*/\s*(?!100\b)\d)"  # "8/10" is not a 0-100 score
_SCORE_PATTERNS = [
    re.compile(r"\[\[\s*" + _NUM + r"\s*\]\]"),
    re.compile(
        r"\b(?:score|rating|grade)\s*(?:is|of)?\s*[:=]?\s*\**\s*" + _NUM + _NOT_OTHER_SCALE,
        re.IGNORECASE,
    ),
    re.compile(_NUM + r"\s*/\s*100\b"),
    re.compile(r"\A\s*" + _NUM + r"\s*\Z"),  # a bare number
]


def parse_score_0_100(text: str | None) -> float | None:
    """A 0-100 score from a judge answer: ``[[85]]``, ``Score: 85``, ``85/100`` or ``85``.

    The first pattern (in that order) found wins, taking its last occurrence; a score outside
    0-100 gives ``None`` rather than a fallback to another number.
    """
    if not text:
        return None
    for pattern in _SCORE_PATTERNS:
        found = pattern.findall(text)
        if found:
            value = float(found[-1])
            return value if 0.0 <= value <= 100.0 else None
    return None


def _binary(value: Any) -> int | None:
    text = str(int(value)) if isinstance(value, bool) else str(value).strip()
    return int(text) if text in ("0", "1") else None


def parse_binary_scores(text: str | None, keys: Sequence[str]) -> dict[str, int] | None:
    """0/1 scores for every key, from JSON (``{"reasoning": 1}``) or ``key: 1`` lines.

    Returns:
        ``{key: 0 or 1}``, or ``None`` when any key is missing or not 0/1.
    """
    if not text:
        return None
    for blob in re.findall(r"\{[^{}]*\}", text):
        try:
            data = json.loads(blob)
        except ValueError:
            continue
        if isinstance(data, dict):
            lowered = {str(k).strip().lower(): v for k, v in data.items()}
            scores = {k: _binary(lowered.get(k.lower())) for k in keys}
            if all(v is not None for v in scores.values()):
                return scores  # type: ignore[return-value]
    scores: dict[str, int] = {}
    for key in keys:
        name = re.escape(key).replace("_", "[_ ]")
        pattern = rf"\b{name}\b\**\s*[:=]\s*\**\s*([01])(?![\d.])"
        found = re.findall(pattern, text, re.IGNORECASE)
        if not found:
            return None
        scores[key] = int(found[-1])
    return scores
