"""Launching Debian's Chromium through Playwright (never a browser downloaded by Playwright).

Shared by the browser tests and ``python -m tests.browser.screenshots``.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

# --headless is added by Playwright itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: With REQUIRE_BROWSER=1 (set by .ci/run) a missing browser fails the run instead of skipping.
REQUIRED = os.environ.get("REQUIRE_BROWSER", "") == "1"


def unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements-dev.txt)"
    if not shutil.which("chromium"):
        return "no chromium on PATH (Debian: apt-get install chromium)"
    return None


def launch(playwright: Any) -> Any:
    """Debian's ``chromium`` from PATH, headless, with the flags CI needs."""
    return playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
