"""Where hgm keeps things outside a run directory."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$HGM_CACHE_DIR, else $XDG_CACHE_HOME/hgm, else ~/.cache/hgm (benchmarks, toolchain deps, venvs)."""
    if env := os.environ.get("HGM_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hgm"
