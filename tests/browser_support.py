"""Shared set-up of the real-browser tests: Debian's Chromium driven by Playwright (never a
downloaded browser) and a Flask app served on 127.0.0.1 in a thread.

A test module does `from browser_support import BROWSER_MARKS, serve, ...` and sets
`pytestmark = BROWSER_MARKS`; the module-scoped `browser` fixture is in conftest.py."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE = bool(os.environ.get("HOTLINE_TEST_REQUIRE_BROWSER"))
ARTIFACTS = REPO / "test-artifacts"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]

BROWSER_MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists() and not REQUIRE,
                       reason="/usr/bin/chromium is not installed (apt-get install -y chromium); "
                              "set HOTLINE_TEST_REQUIRE_BROWSER=1 to make this a failure"),
]


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless, no network extras (the `browser` fixture in conftest)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free port of 127.0.0.1 for the duration; yields its base URL."""
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        thread.join(5)
