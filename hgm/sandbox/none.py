"""`none` backend: a plain subprocess on the host. It isolates nothing — for debugging only.

What it still does, like every backend: the environment is exactly `env` plus the harness's
PATH and HOME (never the rest of the harness's environment, e.g. API keys), output is capped
per stream, and a timeout SIGKILLs the whole process group (a descendant that calls setsid()
escapes it: another thing `none` does not promise). `mounts` are not applied: commands see
the host's real paths, so a mount whose target differs from its source is refused.
Memory and file-size limits are not enforced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from hgm.errors import SandboxUnavailable
from hgm.sandbox._proc import kill_group, run_capped
from hgm.sandbox._running import Running
from hgm.sandbox.base import ExecResult, Limits, Mount

log = logging.getLogger(__name__)


class NoSandbox:
    """Runs commands directly on the host (no isolation; see module docstring)."""

    name = "none"

    def __init__(self) -> None:
        self.default_path = os.environ.get("PATH", os.defpath)
        """PATH a command gets unless `env` sets one (the harness's)."""
        self._running = Running()
        log.warning("sandbox backend 'none': agent and test code run on this host WITHOUT isolation")

    def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str] | None = None,
        timeout: float,
        mounts: Sequence[Mount] = (),
        limits: Limits = Limits(),  # noqa: B008 - frozen, as in the protocol
        stdin: str | None = None,
    ) -> ExecResult:
        """Run argv as a host subprocess in `cwd`."""
        for m in mounts:
            if os.path.abspath(m.source) != os.path.abspath(m.target):
                raise SandboxUnavailable(
                    f"backend 'none' cannot mount {m.source} at {m.target}: it runs on the host, "
                    "so use the host path as the target (or a real sandbox: bwrap, docker)"
                )
        base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
        with self._running.command() as cmd:
            result = run_capped(
                argv,
                env={"LANG": "C.UTF-8", **base, **(env or {})},
                cwd=cwd,
                stdin=stdin,
                timeout=timeout,
                output_bytes=limits.output_bytes,
                kill=lambda proc: kill_group(proc.pid),
                on_start=lambda proc: cmd.started(lambda: kill_group(proc.pid)),
            )
            cmd.check()
            return result

    def shutdown(self, timeout: float = 10.0) -> int:
        """Kill every running command's process group; refuse new commands."""
        return self._running.shutdown(timeout)
