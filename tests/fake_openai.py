"""A scriptable fake OpenAI-compatible server for tests (127.0.0.1 only, random port).

Usage::

    with FakeOpenAI() as server:
        server.push(body=chat_body("[[85]]"))
        server.push(status=500, body={"error": "boom"})
        ...  # point a client at server.base_url ("http://127.0.0.1:<port>/v1")
        assert len(server.requests) == 1

Responses are served in the order they were pushed, whatever the path; when the queue is empty
the ``default`` response is served, or HTTP 410 (not retryable) so a test fails fast.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATHS = ("/v1/chat/completions", "/v1/completions")


@dataclass
class FakeResponse:
    """One scripted answer: a dict/list body is sent as JSON, a str body as plain text."""

    status: int = 200
    body: Any = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def chat_body(
    text: str | None, prompt_tokens: int | None = None, completion_tokens: int | None = None
) -> dict[str, Any]:
    """A ``/chat/completions`` answer; usage is included when token counts are given."""
    body: dict[str, Any] = {
        "object": "chat.completion",
        "model": "fake",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }
    if prompt_tokens is not None or completion_tokens is not None:
        body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return body


def completion_body(
    text: str, prompt_tokens: int | None = None, completion_tokens: int | None = None
) -> dict[str, Any]:
    """A ``/completions`` answer; usage is included when token counts are given."""
    body: dict[str, Any] = {
        "object": "text_completion",
        "model": "fake",
        "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
    }
    if prompt_tokens is not None or completion_tokens is not None:
        body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return body


class FakeOpenAI:
    """Threaded HTTP server with a response queue and a request log.

    Attributes:
        requests: One dict per request received: ``method``, ``path``, ``headers``, ``json``
            (the decoded body, or ``None``).
        default: Served when the queue is empty (``None``: HTTP 410).
    """

    def __init__(self, default: FakeResponse | None = None):
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[FakeResponse] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def push(
        self,
        status: int = 200,
        body: Any = None,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> FakeOpenAI:
        """Queue one response; returns ``self`` so calls can be chained."""
        with self._lock:
            self._queue.append(FakeResponse(status, body, delay, headers or {}))
        return self

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """The API root clients take: ``http://127.0.0.1:<port>/v1``."""
        return self.url + "/v1"

    def _next(self, request: dict[str, Any]) -> FakeResponse:
        with self._lock:
            self.requests.append(request)
            if request["path"] not in PATHS:
                return FakeResponse(404, {"error": f"unknown path {request['path']}"})
            if self._queue:
                return self._queue.popleft()
        return self.default or FakeResponse(410, {"error": "fake server: no scripted response"})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw) if raw else None
                except ValueError:
                    payload = None
                reply = fake._next(
                    {
                        "method": "POST",
                        "path": self.path,
                        "headers": dict(self.headers),
                        "json": payload,
                    }
                )
                if reply.delay and fake._stop.wait(reply.delay):
                    return
                body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = body.encode()
                ctype = "text/plain" if isinstance(reply.body, str) else "application/json"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout) and closed the socket
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler

    def start(self) -> FakeOpenAI:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake delayed handlers, stop serving and close the socket."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
