"""Open a report in headless Chromium, as a reader would: for the tests and bench/report.py.

Debian's ``chromium`` (installed by scripts/system-deps.sh), driven by Playwright
(a dev dependency) through ``executable_path``, so no browser download is needed. The
flags keep Chromium from calling home (this machine's network is closed).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionstorm.errors import ConfigError

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]
LOCAL_SCHEMES = ("file:", "data:", "about:")


def chromium_path() -> str:
    path = os.environ.get("SESSIONSTORM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise ConfigError("SESSIONSTORM_CHROMIUM", "unset", "a Chromium binary",
                          "run `make system-deps` (installs Debian's chromium) or set SESSIONSTORM_CHROMIUM")
    return path


@dataclass
class Visit:
    load_s: float
    requests: list[str] = field(default_factory=list)   # every URL the page asked for
    console: list[str] = field(default_factory=list)    # console errors (CSP violations land here)
    text: str = ""
    scripts: int = 0                                    # <script> elements in the loaded DOM

    def external(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]


class Browser:
    def __init__(self, page_factory: Any) -> None:
        self._new_page = page_factory

    def visit(self, path: str | os.PathLike[str], screenshot: str | os.PathLike[str] | None = None,
              html: str | None = None) -> Visit:
        """Load a file (or an HTML string) and wait for its load event; record what it fetched."""
        page = self._new_page()
        visit = Visit(load_s=0.0)
        page.on("request", lambda r: visit.requests.append(r.url))
        page.on("console", lambda m: visit.console.append(m.text) if m.type == "error" else None)
        try:
            t0 = time.perf_counter()
            if html is not None:
                page.set_content(html, wait_until="load")
            else:
                page.goto(Path(path).resolve().as_uri(), wait_until="load")
            visit.load_s = time.perf_counter() - t0
            visit.text = page.inner_text("body")
            if screenshot:
                page.screenshot(path=str(screenshot), full_page=False)
            visit.scripts = page.evaluate("document.scripts.length")
        finally:
            page.close()
        return visit


@contextmanager
def browser() -> Iterator[Browser]:
    """A fresh headless Chromium with an empty profile, closed (and its profile removed) after."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ConfigError("playwright", "not installed", "the dev extra",
                          "pip install -e '.[dev]' (make test does it)") from None
    profile = tempfile.mkdtemp(prefix="sessionstorm-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=chromium_path(), args=FLAGS,
                                                       headless=True, viewport={"width": 1280, "height": 900})
            try:
                yield Browser(ctx.new_page)
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
