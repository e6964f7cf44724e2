"""Render a local HTML file in headless Chromium and report what a reader would see.

Talks to Chromium over the DevTools protocol on its ``--remote-debugging-pipe`` transport (file
descriptors 3 and 4, messages separated by NUL bytes): no websocket library, no open port. It
collects console errors, uncaught exceptions, browser log errors and every request for something
other than ``file:``, ``data:`` or ``about:`` URLs, reads a few DOM facts, and takes a screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)
LOCAL_SCHEMES = ("file:", "data:", "about:", "chrome:", "devtools:")

DOM_FACTS = """(() => {
  const imgs = Array.from(document.images);
  const texts = (sel) => Array.from(document.querySelectorAll(sel)).map(e => e.textContent.trim());
  return {
    title: document.title,
    headings: texts('h1, h2, h3'),
    captions: texts('caption'),
    tables: document.querySelectorAll('table').length,
    images: imgs.length,
    data_images: imgs.filter(i => i.src.startsWith('data:image/png;base64,')).length,
    broken_images: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    scripts: document.scripts.length,
    text_length: document.body ? document.body.innerText.length : 0,
  };
})()"""


def find_chromium() -> str | None:
    """Path of a Chromium binary (``/usr/bin/chromium`` first), or ``None``."""
    for path in CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


@dataclass
class PageResult:
    """What rendering a page produced.

    Attributes:
        dom: Facts read from the rendered DOM (headings, captions, image counts, ...).
        errors: Console errors, uncaught exceptions and browser log errors.
        requests: URLs the page requested that are not local (``file:``/``data:``/``about:``).
        screenshot: PNG bytes of the full page.
        events: Every DevTools event received from the page (for debugging).
    """

    dom: dict[str, Any]
    errors: list[str]
    requests: list[str]
    screenshot: bytes
    events: list[dict[str, Any]] = field(default_factory=list)


class DevToolsPipe:
    """A minimal DevTools protocol client over Chromium's pipe transport."""

    def __init__(self, chromium: str, profile: Path, url: str = "about:blank"):
        profile.mkdir(parents=True, exist_ok=True)
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def attach_pipes() -> None:  # in the child: Chromium reads fd 3 and writes fd 4
            read = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
            write = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.log_path = profile / "chromium.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [chromium, *FLAGS, f"--user-data-dir={profile}", url],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=attach_pipes,  # noqa: PLW1509 (single-threaded test helper)
                close_fds=False,
            )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Chromium did not answer in time; log: {self.log_tail()}")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe; log: {self.log_tail()}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str = "", timeout=30.0
    ) -> dict[str, Any]:
        """Send a command and return its result (events received meanwhile are kept)."""
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self._read(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_event(self, method: str, session: str = "", timeout: float = 30.0) -> dict[str, Any]:
        """Wait for an event (or return it if it already came)."""
        for event in self.events:
            if event["method"] == method and event.get("sessionId", "") == session:
                return event
        deadline = time.monotonic() + timeout
        while True:
            message = self._read(deadline)
            if "method" in message:
                self.events.append(message)
                if message["method"] == method and message.get("sessionId", "") == session:
                    return message

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def close(self) -> None:
        """Ask the browser to quit, then make sure it has."""
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            for fd in (self._to_child, self._from_child):
                try:
                    os.close(fd)
                except OSError:
                    pass


def _errors_and_requests(events: list[dict[str, Any]], session: str) -> tuple[list, list]:
    errors, requests = [], []
    for event in events:
        if event.get("sessionId", "") != session:
            continue
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            errors.append(f"uncaught: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            errors.append(f"console.{params['type']}: {' '.join(args)}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            where = entry.get("url", "")
            errors.append(f"log ({entry.get('source')}): {entry.get('text')} {where}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            errors.append(f"load failed: {params.get('errorText')}")
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if not url.startswith(LOCAL_SCHEMES):
                requests.append(url)
    return errors, requests


def render_page(
    html_path: Path,
    chromium: str,
    profile: Path,
    width: int = 1280,
    height: int = 1600,
    timeout: float = 45.0,
) -> PageResult:
    """Load ``html_path`` in headless Chromium and report errors, requests, DOM and screenshot.

    Args:
        html_path: The page.
        chromium: The Chromium binary (:func:`find_chromium`).
        profile: A fresh folder for Chromium's user data (its log goes there too).
        width: Viewport width.
        height: Viewport height (the screenshot covers the whole page).
        timeout: Seconds allowed for each step.
    """
    browser = DevToolsPipe(chromium, profile)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
        session = browser.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )["sessionId"]
        for domain in ("Network", "Runtime", "Log", "Page"):
            browser.call(f"{domain}.enable", session=session, timeout=timeout)
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        url = Path(html_path).resolve().as_uri()
        nav = browser.call("Page.navigate", {"url": url}, session=session, timeout=timeout)
        if nav.get("errorText"):
            raise RuntimeError(f"navigation to {url} failed: {nav['errorText']}")
        browser.wait_event("Page.loadEventFired", session=session, timeout=timeout)
        dom = browser.call(
            "Runtime.evaluate",
            {"expression": DOM_FACTS, "returnByValue": True},
            session=session,
            timeout=timeout,
        )["result"]["value"]
        shot = browser.call(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True},
            session=session,
            timeout=timeout,
        )
        errors, requests = _errors_and_requests(browser.events, session)
        return PageResult(
            dom, errors, requests, base64.b64decode(shot["data"]), list(browser.events)
        )
    finally:
        browser.close()
