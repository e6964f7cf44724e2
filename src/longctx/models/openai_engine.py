"""Generation through an OpenAI-compatible server (vLLM, SGLang, llama.cpp server, OpenAI, ...).

:class:`OpenAIEngine` mirrors :class:`longctx.models.generate.LocalEngine` where it makes sense:
prompts are already chat-templated by longctx, so they go to ``/completions`` as raw text (or as
token ids with :meth:`OpenAIEngine.generate_ids`); ``chat=True`` sends a single user message to
``/chat/completions`` instead. Decoding is greedy (temperature 0).

:func:`post_json` is the shared HTTP call with retries: connection errors, timeouts, HTTP 429 and
5xx are retried with exponential backoff (``backoff * 2**attempt`` seconds, or the server's
``Retry-After`` when it asks for longer); other 4xx answers fail at once.
"""

from __future__ import annotations

import os
import time
from typing import Any

import requests

from longctx.models.generate import Generation

MAX_SLEEP = 60.0


class APIError(RuntimeError):
    """An OpenAI-compatible call failed for good (after retries, or a non-retryable answer).

    Attributes:
        status: The HTTP status of the last answer, or ``None`` when none came back.
        attempts: How many requests were made.
    """

    def __init__(self, message: str, status: int | None = None, attempts: int = 0):
        super().__init__(message)
        self.status = status
        self.attempts = attempts


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def post_json(
    url: str,
    payload: dict[str, Any],
    api_key: str | None = None,
    timeout: float = 600,
    max_retries: int = 4,
    backoff: float = 1.0,
) -> dict[str, Any]:
    """POST a JSON payload and return the JSON answer, retrying transient failures.

    Args:
        url: Full endpoint URL, e.g. ``http://127.0.0.1:8000/v1/completions``.
        payload: The request body.
        api_key: Sent as ``Authorization: Bearer <key>`` when given.
        timeout: Seconds per request (connect and read).
        max_retries: Retries after the first attempt (``max_retries + 1`` requests at most).
        backoff: Base of the exponential backoff, in seconds.

    Returns:
        The decoded JSON object of a 2xx answer.

    Raises:
        APIError: A non-retryable answer, a non-JSON 2xx body, or retries exhausted.
    """
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    last = "no attempt made"
    status: int | None = None
    for attempt in range(max_retries + 1):
        wait = backoff * 2**attempt
        try:
            response = requests.post(url, json=payload, headers=headers, timeout=timeout)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as err:
            last, status = f"{type(err).__name__}: {err}", None
        else:
            status = response.status_code
            if 200 <= status < 300:
                try:
                    body = response.json()
                except ValueError as err:
                    raise APIError(
                        f"{url}: HTTP {status} with a non-JSON body: {response.text[:200]!r}",
                        status,
                        attempt + 1,
                    ) from err
                if not isinstance(body, dict):
                    raise APIError(f"{url}: expected a JSON object, got {body!r:.200}", status)
                return body
            last = f"HTTP {status}: {response.text[:300]}"
            if status != 429 and status < 500:
                raise APIError(f"{url}: {last}", status, attempt + 1)
            wait = max(wait, min(_retry_after(response) or 0.0, MAX_SLEEP))
        if attempt < max_retries:
            time.sleep(min(wait, MAX_SLEEP))
    raise APIError(
        f"{url}: failed after {max_retries + 1} attempts; last error: {last}",
        status,
        max_retries + 1,
    )


class OpenAIEngine:
    """Greedy generation through an OpenAI-compatible HTTP server.

    Args:
        base_url: API root including the version, e.g. ``http://127.0.0.1:8000/v1``.
        model: Model name the server expects.
        api_key: Bearer token (default: ``$OPENAI_API_KEY`` when set).
        timeout: Seconds per request.
        max_retries: Retries on transient failures (see :func:`post_json`).
        tokenizer: Optional Hugging Face tokenizer for :meth:`encode` and token counts the server
            does not report.
        chat: Send prompts as one user message to ``/chat/completions``.
        backoff: Base of the exponential backoff, in seconds.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 600,
        max_retries: int = 4,
        tokenizer: Any = None,
        chat: bool = False,
        backoff: float = 1.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.max_retries = max_retries
        self.tokenizer = tokenizer
        self.chat = chat
        self.backoff = backoff

    def encode(self, text: str) -> list[int]:
        """Token ids of a rendered prompt with the local tokenizer (as ``LocalEngine.encode``).

        Raises:
            RuntimeError: No tokenizer was given.
        """
        if self.tokenizer is None:
            raise RuntimeError("OpenAIEngine.encode needs a tokenizer (pass tokenizer=...)")
        add_special = not getattr(self.tokenizer, "chat_template", None)
        return self.tokenizer.encode(text, add_special_tokens=add_special)

    def _post(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        return post_json(
            f"{self.base_url}/{endpoint}",
            {"model": self.model, **payload},
            api_key=self.api_key,
            timeout=self.timeout,
            max_retries=self.max_retries,
            backoff=self.backoff,
        )

    def _generation(
        self, body: dict[str, Any], start: float, prompt_tokens: int | None
    ) -> Generation:
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"] if self.chat else choice["text"]
        except (KeyError, IndexError, TypeError) as err:
            raise APIError(f"malformed answer from {self.base_url}: {body!r:.300}") from err
        text = text or ""
        usage = body.get("usage") or {}
        if usage.get("prompt_tokens") is not None:
            prompt_tokens = int(usage["prompt_tokens"])
        if usage.get("completion_tokens") is not None:
            new_tokens = int(usage["completion_tokens"])
        elif self.tokenizer is not None:
            new_tokens = len(self.tokenizer.encode(text, add_special_tokens=False))
        else:
            new_tokens = -1
        return Generation(
            text,
            -1 if prompt_tokens is None else prompt_tokens,
            new_tokens,
            time.perf_counter() - start,
        )

    def generate_text(
        self, prompt_text: str, max_new_tokens: int, do_sample: bool = False
    ) -> Generation:
        """Generate from a rendered prompt.

        Args:
            prompt_text: The prompt (already chat-templated unless ``chat=True``).
            max_new_tokens: Upper bound on generated tokens (``max_tokens``).
            do_sample: Sample at temperature 1 instead of greedy decoding.

        Returns:
            A :class:`Generation`; ``prompt_tokens`` comes from the server's ``usage``, else the
            tokenizer, else -1 (likewise ``new_tokens``).
        """
        start = time.perf_counter()
        params = {"max_tokens": max_new_tokens, "temperature": 1.0 if do_sample else 0.0}
        if self.chat:
            messages = [{"role": "user", "content": prompt_text}]
            body = self._post("chat/completions", {"messages": messages, **params})
        else:
            body = self._post("completions", {"prompt": prompt_text, **params})
        local = len(self.encode(prompt_text)) if self.tokenizer is not None else None
        return self._generation(body, start, local)

    def generate_ids(
        self, input_ids: list[int], max_new_tokens: int, do_sample: bool = False
    ) -> Generation:
        """Generate from token ids (sent as a token-array prompt to ``/completions``).

        Raises:
            ValueError: The engine is in chat mode, which takes text only.
        """
        if self.chat:
            raise ValueError("generate_ids needs the /completions endpoint (chat=False)")
        start = time.perf_counter()
        params = {"max_tokens": max_new_tokens, "temperature": 1.0 if do_sample else 0.0}
        body = self._post("completions", {"prompt": list(input_ids), **params})
        return self._generation(body, start, len(input_ids))
