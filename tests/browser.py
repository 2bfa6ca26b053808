"""Debian's Chromium (/usr/bin/chromium), headless, driven by Playwright's Python client.

Playwright is only the driver here: it never downloads a browser of its own (no `playwright
install`); it starts the system Chromium with the flags this machine needs (background networking
off, so Chromium does not try to reach Google's hosts on a closed network) and a fresh profile.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
"""Screenshots the browser tests keep (CI keeps this directory; it is git-ignored)."""


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: `bash scripts/install.sh --dev` installs Debian's chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[dev]'"
    return None


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium browser (playwright Browser) with a fresh user-data-dir."""
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="hgm-report-chromium-"))
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(profile), executable_path=str(CHROMIUM), headless=True, args=FLAGS,
                viewport={"width": 1400, "height": 1000})
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
