"""Sandbox backends by name. `get_sandbox("bwrap")` -> a `Sandbox` (see hgm/sandbox/base.py).

Not in BACKENDS, because it needs an image's exported root filesystem rather than a config:
`rootfs.RootfsSandbox`, bwrap on an image's system with that image's environment (SWE-bench's
instance environments on the bwrap backend, made by hgm/benchmarks/swe_bench/environment.py); it
passes the same conformance suite (tests/test_sandbox_conformance.py)."""

from __future__ import annotations

from collections.abc import Callable

from hgm.config import SandboxConfig
from hgm.errors import UserError
from hgm.sandbox.base import ExecResult, Limits, Mount, Sandbox


def _bwrap(config: SandboxConfig) -> Sandbox:
    from hgm.sandbox.bwrap import BwrapSandbox

    return BwrapSandbox(extra_system_paths=config.system_paths)


def _none(config: SandboxConfig) -> Sandbox:
    from hgm.sandbox.none import NoSandbox

    return NoSandbox()


def _docker(config: SandboxConfig) -> Sandbox:
    from hgm.sandbox.docker import DockerSandbox

    return DockerSandbox(config)


BACKENDS: dict[str, Callable[[SandboxConfig], Sandbox]] = {"bwrap": _bwrap, "none": _none, "docker": _docker}
"""Backend name -> factory taking the sandbox config section."""


def get_sandbox(name: str, config: SandboxConfig | None = None) -> Sandbox:
    """The backend called `name`; hgm.errors.SandboxUnavailable (with the fix) if it cannot run here."""
    factory = BACKENDS.get(name)
    if factory is None:
        raise UserError(f"unknown sandbox backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    return factory(config or SandboxConfig())


def limits_from(config: SandboxConfig) -> Limits:
    """The per-command limits a config section asks for."""
    return Limits(
        memory_mb=config.memory_mb,
        pids=config.pids,
        file_size_mb=config.file_size_mb,
        output_bytes=config.output_bytes,
    )


__all__ = ["BACKENDS", "ExecResult", "Limits", "Mount", "Sandbox", "get_sandbox", "limits_from"]
