"""The one sandbox shape every backend implements (bwrap, docker, none).

A command that fails is a result (`ExecResult`); a sandbox that cannot work at all raises
`SandboxUnavailable`, whose message says how to fix it. Timeouts kill the whole process tree.
No network inside, except Unix sockets that are mounted in (the LLM gateway's). `shutdown`
ends everything a sandbox has running and leaves nothing behind (processes, cgroups, containers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Mount:
    """Bind `source` (host path) at `target` (path inside the sandbox)."""

    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 4096
    pids: int = 512
    file_size_mb: int = 512
    output_bytes: int = 1_000_000
    """Bytes kept per stream; the rest is drained and dropped."""


@dataclass(frozen=True)
class ExecResult:
    """What a command did. `returncode` follows the shell convention on every backend: killed by
    signal N -> 128 + N (a timeout's SIGKILL -> 137)."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    duration_s: float = 0.0
    output_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class Sandbox(Protocol):
    name: str
    default_path: str
    """PATH a command gets unless `env` sets one (callers put a venv's bin before it)."""

    def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str] | None = None,
        timeout: float,
        mounts: Sequence[Mount] = (),
        limits: Limits = Limits(),
        stdin: str | None = None,
    ) -> ExecResult:
        """Run argv inside the sandbox. Only `mounts` are visible besides a read-only system;
        the environment is exactly `env` (plus PATH/HOME defaults), never the harness's. The
        sandbox of an instance image (docker with image_env, rootfs) starts from that image's
        config Env instead, as `docker exec` does."""
        ...

    def shutdown(self, timeout: float = 10.0) -> int:
        """Refuse new commands (SandboxClosed), kill the running ones and remove what they leave
        (process trees, cgroups, containers), waiting at most about `timeout` s. Returns how many
        commands were running."""
        ...
