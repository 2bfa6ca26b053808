"""Resource limits of one sandboxed command: cgroups where usable, rlimits otherwise.

Decisions (investigated on the dev machine: Debian 12 userland, kernel 6.18, root, cgroup v1
hybrid with memory and pids controllers; CI hosts usually have cgroup v2):

- Memory and processes: a fresh cgroup per exec with the memory limit (v2 memory.max /
  v1 memory.limit_in_bytes) and pids.max, created next to the harness's own cgroup (v2: as a
  sibling, because a v2 cgroup holding processes cannot delegate controllers; v1: as a child).
  Usability is checked once by creating a probe cgroup and writing the limits.
  The command joins it before bwrap starts: a `/bin/sh` wrapper writes its own pid into
  cgroup.procs and then execs (no race with bwrap's first fork, no preexec_fn in a threaded
  harness). Timeout: cgroup.kill (v2, kernel >= 5.14) or SIGKILL of every member.
  Only the v1 path ran on the dev machine (its v2 hierarchy has no controllers); the v2 path
  follows the kernel's cgroup-v2 rules and falls back to rlimits, with a logged reason
  (`LimitEnforcer.reason`), if its probe fails.
- Without usable cgroups: RLIMIT_DATA for memory (counts writable private mappings, so the
  JVM's, Go's and V8's large PROT_NONE address-space reservations still work — RLIMIT_AS
  would break them; measured: java, go, node, cargo start under a 512 MB RLIMIT_DATA). No
  process limit then: RLIMIT_NPROC is never enforced for uid 0, so a fork bomb is contained only
  by the pid namespace and the timeout. `LimitEnforcer.kind` says which.
- File size: RLIMIT_FSIZE always (via util-linux `prlimit`); exceeding it kills with SIGXFSZ.
  Core dumps off (RLIMIT_CORE 0).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from hgm.errors import SandboxUnavailable
from hgm.sandbox._proc import kill_group
from hgm.sandbox.base import ExecResult, Limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
_JOIN_FAILED = f"hgm-sandbox-join-failed-{secrets.token_hex(8)}"
"""Printed by the wrapper when it cannot join the cgroup; random, so sandboxed code cannot fake it."""
_JOIN = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || { echo "$0 $1" >&2; exit 125; };'
    ' shift; n=$((n-1)); done; exec "$@"'
)
_counter = itertools.count()
log = logging.getLogger(__name__)


def _own_cgroups() -> dict[str, str]:
    """controller -> cgroup path of this process ('' key: the v2 unified hierarchy)."""
    out: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


@dataclass
class _Cgroups:
    """The cgroup directories of one job (one per v1 controller, or one v2 dir)."""

    dirs: list[Path]
    v2: bool

    def write_limits(self, limits: Limits) -> None:
        mem = str(limits.memory_mb * 1024 * 1024)
        for d in self.dirs:
            if self.v2:
                (d / "memory.max").write_text(mem)
                if (d / "memory.swap.max").exists():
                    (d / "memory.swap.max").write_text("0")
                (d / "pids.max").write_text(str(limits.pids))
            elif (d / "memory.limit_in_bytes").exists():
                (d / "memory.limit_in_bytes").write_text(mem)
                with contextlib.suppress(OSError):
                    (d / "memory.memsw.limit_in_bytes").write_text(mem)
            else:
                (d / "pids.max").write_text(str(limits.pids))

    def members(self) -> list[int]:
        pids: list[int] = []
        for d in self.dirs:
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (d / "cgroup.procs").read_text().split()]
        return pids

    def kill(self) -> None:
        if self.v2 and (self.dirs[0] / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (self.dirs[0] / "cgroup.kill").write_text("1")
            return
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def events(self) -> tuple[int, int]:
        """(OOM kills, forks refused at pids.max) so far."""
        oom = refused = 0
        for d in self.dirs:
            for name in ("memory.events", "memory.oom_control", "pids.events"):
                with contextlib.suppress(OSError):
                    for line in (d / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            oom += int(value)
                        elif key == "max" and name == "pids.events":
                            refused += int(value)
        return oom, refused

    def remove(self) -> None:
        for attempt in range(12):  # ~2 s at most; a cgroup that will not go is left behind
            self.kill()
            left = []
            for d in self.dirs:
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    left.append(d)
            if not left:
                return
            self.dirs = left
            time.sleep(0.0005 * 2**attempt)  # exiting members usually leave within a millisecond


@dataclass
class Job:
    """Limits of one exec: wraps argv so the command starts inside them."""

    limits: Limits
    cgroups: _Cgroups | None
    rlimit_memory: bool
    prlimit: str
    """Absolute path: the command's own PATH (from `env`) may not lead to it."""

    def wrap(self, argv: list[str]) -> list[str]:
        fsize = self.limits.file_size_mb * 1024 * 1024
        rl = [self.prlimit, f"--fsize={fsize}:{fsize}", "--core=0:0"]
        if self.rlimit_memory:
            data = self.limits.memory_mb * 1024 * 1024
            rl.append(f"--data={data}:{data}")
        wrapped = [*rl, "--", *argv]
        if self.cgroups is None:
            return wrapped
        procs = [str(d / "cgroup.procs") for d in self.cgroups.dirs]
        return ["/bin/sh", "-c", _JOIN, _JOIN_FAILED, str(len(procs)), *procs, *wrapped]

    def check_joined(self, result: ExecResult) -> None:
        """Raise SandboxUnavailable if the command never started because it could not join its cgroup."""
        if result.returncode == 125 and _JOIN_FAILED in result.stderr:
            raise SandboxUnavailable(
                f"could not move the sandboxed command into its cgroup ({result.stderr.strip()}); "
                "something else manages these cgroups: run with sandbox.backend=docker, or report it"
            )

    def kill(self, outer_pid: int) -> None:
        """SIGKILL the wrapper's process group (bwrap itself) and everything in the cgroup."""
        kill_group(outer_pid)
        if self.cgroups is not None:
            self.cgroups.kill()

    def remove(self) -> None:
        """Kill what is left in the cgroup and remove it (idempotent)."""
        if self.cgroups is not None:
            self.cgroups.remove()

    def annotate(self, result: ExecResult) -> ExecResult:
        """Say in stderr when a limit killed or throttled the command (agents read test output)."""
        if self.cgroups is None:
            return result
        oom, refused = self.cgroups.events()
        notes = []
        if oom:
            notes.append(f"[sandbox] killed: memory limit of {self.limits.memory_mb} MB exceeded")
        if refused:
            notes.append(f"[sandbox] process limit of {self.limits.pids} reached ({refused} forks refused)")
        if not notes:
            return result
        return replace(result, stderr=result.stderr + ("\n" if result.stderr else "") + "\n".join(notes) + "\n")


class LimitEnforcer:
    """Chooses, once, how limits are enforced here: 'cgroup2', 'cgroup1' or 'rlimit'."""

    def __init__(self, kind: str, parents: list[Path], reason: str = "") -> None:
        self.kind = kind
        self.reason = reason
        """Why cgroups are not used (empty when they are)."""
        self._parents = parents
        self.prlimit = shutil.which("prlimit")
        """util-linux prlimit, which sets the rlimits; None if missing."""

    @classmethod
    def detect(cls, use_cgroups: bool = True) -> LimitEnforcer:
        if not use_cgroups:
            return cls("rlimit", [], "cgroups not requested")
        if os.geteuid() != 0:
            return cls("rlimit", [], "not root: cannot create cgroups")
        reasons = []
        for kind, parents in (("cgroup2", _v2_parents()), ("cgroup1", _v1_parents())):
            if not parents:
                reasons.append(f"{kind}: no memory+pids hierarchy found")
                continue
            try:
                cls(kind, parents)._create(Limits(memory_mb=64, pids=8)).remove()
            except OSError as e:
                reasons.append(f"{kind} under {parents[0]}: {e}")
                continue
            _remove_stale(parents)
            return cls(kind, parents)
        reason = "; ".join(reasons)
        log.warning("sandbox: cgroup limits unusable (%s); memory via RLIMIT_DATA, no process limit", reason)
        return cls("rlimit", [], reason)

    def _create(self, limits: Limits) -> _Cgroups:
        name = f"hgm-{os.getpid()}-{next(_counter)}"
        cg = _Cgroups([p / name for p in self._parents], v2=self.kind == "cgroup2")
        try:
            for d in cg.dirs:
                d.mkdir()
            cg.write_limits(limits)
        except OSError:
            cg.remove()
            raise
        return cg

    @contextlib.contextmanager
    def job(self, limits: Limits) -> Iterator[Job]:
        cg = self._create(limits) if self.kind != "rlimit" else None
        try:
            if self.prlimit is None:
                raise SandboxUnavailable("prlimit is missing; install it with `apt-get install util-linux`")
            yield Job(limits, cg, rlimit_memory=cg is None, prlimit=self.prlimit)
        finally:
            if cg is not None:
                cg.remove()


def _remove_stale(parents: list[Path]) -> None:
    """Remove job cgroups left by harness processes that died (hgm-<pid>-<n>, pid gone)."""
    for parent in parents:
        for d in parent.glob("hgm-*-*"):
            pid = d.name.split("-")[1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _Cgroups([d], v2=False).remove()


def _v2_parents() -> list[Path]:
    if not (CGROUP_ROOT / "cgroup.controllers").exists():
        return []
    own = _own_cgroups().get("", "/")
    parent = CGROUP_ROOT / own.lstrip("/")
    if own != "/":
        parent = parent.parent  # a v2 cgroup with processes cannot have controlled children
    try:  # /proc/self/cgroup may name a path this mount does not show (container without cgroupns)
        enabled = (parent / "cgroup.subtree_control").read_text().split()
    except OSError:
        return []
    if not {"memory", "pids"} <= set(enabled):
        with contextlib.suppress(OSError):
            (parent / "cgroup.subtree_control").write_text("+memory +pids")
    return [parent]


def _v1_parents() -> list[Path]:
    own = _own_cgroups()
    dirs = [CGROUP_ROOT / c / own[c].lstrip("/") for c in ("memory", "pids") if c in own]
    return dirs if len(dirs) == 2 and all(d.is_dir() for d in dirs) else []
