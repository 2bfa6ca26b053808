"""Where hgm keeps things outside a run directory."""

from __future__ import annotations

import os
from pathlib import Path

from hgm.errors import UserError


def cache_dir() -> Path:
    """$HGM_CACHE_DIR, else $XDG_CACHE_HOME/hgm, else ~/.cache/hgm (benchmarks, toolchain deps, venvs)."""
    if env := os.environ.get("HGM_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hgm"


INITIAL_AGENT = Path(__file__).parent / "agents" / "initial"
"""The seed coding agent shipped with hgm (`initial` on the command line)."""


def resolve_agent_dir(spec: str) -> Path:
    """An agent directory from `initial` or a path; UserError unless it holds coding_agent.py."""
    path = INITIAL_AGENT if spec == "initial" else Path(spec).expanduser()
    if not path.is_dir():
        raise UserError(f"no agent directory {spec!r}; give `initial` (the seed agent) or a directory "
                        "holding coding_agent.py")
    if not (path / "coding_agent.py").is_file():
        raise UserError(f"{path} is not an agent directory (no coding_agent.py in it)")
    return path.resolve()
