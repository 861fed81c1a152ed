"""Load a page in a real headless Chromium and return its DOM and console errors.

Chromium runs as a subprocess with ``--dump-dom``: stdout is the serialised DOM after ``load``
(and the virtual-time budget); with ``--enable-logging=stderr`` every console message is a
stderr line such as ``[…:INFO:CONSOLE:3] "Uncaught Error: boom", source: file:///… (3)``.

Chromium logs *every* console level as ``INFO`` there, so ``console.error("x")`` cannot be told
from ``console.log("x")`` on stderr, and failed resource loads are not logged at all. Errors are
therefore gathered from two places:

* stderr: console lines whose message starts with ``Uncaught`` (uncaught exceptions, syntax
  errors, unhandled rejections) or that are logged at level ``ERROR``/``FATAL``;
* the DOM: a JSON list in a ``data-errors`` attribute of ``<html>`` or ``<body>``, which the
  page's own script writes (``losslab.analysis.html_report`` hooks ``console.error``, ``error`` events,
  unhandled rejections and CSP violations).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

__all__ = [
    "BROWSERS",
    "PageLoad",
    "console_errors_in",
    "dom_errors_in",
    "find_browser",
    "load_page",
]

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

_CONSOLE = re.compile(
    r":(?P<level>[A-Z]+):CONSOLE[^\]]*\]\s*\"(?P<message>.*)\", source: (?P<source>.*)$"
)


@dataclass
class PageLoad:
    """What a page load gave: the DOM after load and the page's errors."""

    dom: str  # the serialised DOM after load (--dump-dom)
    console_errors: list[str]  # console errors and uncaught exceptions of the page


def find_browser() -> str | None:
    """The first Chromium-like browser on ``PATH``, or ``None``."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def console_errors_in(stderr: str) -> list[str]:
    """The error messages among the ``CONSOLE`` lines of Chromium's stderr log."""
    errors = []
    for line in stderr.splitlines():
        match = _CONSOLE.search(line)
        if match is None:
            continue
        message = match.group("message")
        if match.group("level") in ("ERROR", "FATAL") or message.startswith("Uncaught"):
            errors.append(f"{message} ({match.group('source').strip()})")
    return errors


class _RootAttributes(HTMLParser):
    """Collects the ``data-errors`` attributes of ``<html>`` and ``<body>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("html", "body"):
            self.values.extend(v for k, v in attrs if k == "data-errors" and v)


def dom_errors_in(dom: str) -> list[str]:
    """The errors the page recorded itself in ``data-errors`` (a JSON list, or plain text)."""
    parser = _RootAttributes()
    parser.feed(dom)
    parser.close()
    errors: list[str] = []
    for value in parser.values:
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = [value]
        items = decoded if isinstance(decoded, list) else [decoded]
        errors.extend(f"page: {item}" for item in items)
    return errors


def load_page(path: Path, *, timeout: float = 60) -> PageLoad:
    """Load ``path`` in headless Chromium; raise ``RuntimeError`` if no browser or it fails."""
    browser = find_browser()
    if browser is None:
        raise RuntimeError(f"no browser found (tried {', '.join(BROWSERS)})")
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="losslab-browser-") as profile:
        command = [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a timeout ends all its helpers
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise RuntimeError(f"{browser} did not finish loading {url} in {timeout} s") from None
    stdout = out.decode("utf-8", errors="replace")
    stderr = err.decode("utf-8", errors="replace")
    if process.returncode != 0 or not stdout.strip():
        tail = "\n".join(stderr.splitlines()[-20:])
        raise RuntimeError(f"{browser} exited with {process.returncode} loading {url}:\n{tail}")
    errors = console_errors_in(stderr) + dom_errors_in(stdout)
    return PageLoad(dom=stdout, console_errors=list(dict.fromkeys(errors)))
