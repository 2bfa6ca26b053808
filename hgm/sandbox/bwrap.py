"""bubblewrap backend: each exec runs in fresh Linux namespaces on a read-only view of the system.

What the sandbox sees (decisions, measured on Debian 12 as root):

- Root is an empty tmpfs. `default_system_paths()` are bound read-only at their own place: the
  standard system dirs (/usr, /etc, /opt, /sys; /bin, /lib... as the symlinks they are on merged-/usr
  systems) plus the install prefixes of the toolchains found on the harness's PATH that live
  elsewhere: `sys.base_prefix` (e.g. ~/.pyenv/versions/3.11.7 — so a harness-built venv mounted
  read-only works inside), go, node, java, cmake, g++, ... and, for rustup, only ~/.cargo/bin plus
  RUSTUP_HOME. A prefix directly inside HOME is bound only as its bin dir: HOME's top level holds
  dotfiles and credentials (~/.cargo/credentials.toml, ~/.config, API keys), which stay unseen.
  The list is computed once per process; pass `system_paths=` to replace it or
  `extra_system_paths=` (config `sandbox.system_paths`) to add to it.
- HOME (the harness's home path) is an empty private tmpfs with only those toolchain binds
  inside, so tools that write ~/.cache work and find rustup where they expect it. /tmp, /var/tmp
  and /dev/shm are private tmpfs (each capped at the memory limit; their pages also count in
  the memory cgroup); /proc is fresh (own pid namespace), /dev minimal.
- Writable: only `Mount(read_only=False)` targets. Mounted Unix sockets work (the LLM gateway).
  Not visible: the rest of HOME, /work-style project trees, /run, /var, /mnt, /home, /srv.
  /etc is visible read-only, so keep secrets out of it (bwrap's uid 0 can read /etc/shadow).
- PATH inside (`default_path`): the harness python's bin, then the dirs of the harness's PATH
  that are visible inside (pyenv shims and ~/go/bin drop out). Callers prepend a venv's bin.
- Namespaces: pid, net (loopback only: no TCP/UDP anywhere), ipc, uts, cgroup; no user
  namespace. Run as root, bwrap KEEPS all capabilities unless told (measured: CapEff full, host
  sysctls writable), so we pass --cap-drop ALL and bind /proc/sys read-only: uid 0 without
  capabilities still passes permission checks on root-owned sysctl files.
  --die-with-parent and --new-session. Environment: exactly `env` + PATH/HOME/LANG defaults
  (`env_defaults=` replaces those: the rootfs backend starts from its image's Env).
- Limits: see hgm/sandbox/_limits.py (cgroup memory/pids where usable, else RLIMIT_DATA;
  RLIMIT_FSIZE always). Timeout: SIGKILL of bwrap; the pid namespace's init dies with it
  (--die-with-parent) and the kernel kills every process in the namespace; the cgroup is
  killed as well.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from hgm.errors import SandboxUnavailable
from hgm.sandbox._limits import LimitEnforcer
from hgm.sandbox._proc import run_capped
from hgm.sandbox._running import Running
from hgm.sandbox.base import ExecResult, Limits, Mount

STANDARD_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/sys")
TOOLS = ("go", "cargo", "rustc", "node", "npm", "java", "javac", "mvn", "cmake", "make", "gcc", "g++", "ccache", "git")
"""Tools whose install prefixes become visible when they live outside STANDARD_PATHS."""

INSTALL_HINT = "install it with `apt-get install bubblewrap` (or run scripts/install_system.sh)"


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _standard() -> list[Path]:
    return [Path(p).resolve() for p in STANDARD_PATHS if Path(p).exists()]


def _toolchain_paths(home: Path, path_env: str) -> list[Path]:
    standard = _standard()
    found: list[Path] = [Path(sys.base_prefix).resolve()]
    cargo_home = Path(os.environ.get("CARGO_HOME", home / ".cargo")).resolve()
    rustup_home = Path(os.environ.get("RUSTUP_HOME", home / ".rustup")).resolve()
    for tool in TOOLS:
        where = shutil.which(tool, path=path_env)
        if where is None:
            continue
        bindir = Path(where).resolve().parent
        prefix = bindir.parent if bindir.name == "bin" else bindir
        if bindir == cargo_home / "bin":
            found += [bindir] + ([rustup_home] if rustup_home.is_dir() else [])
        elif prefix.parent == home or prefix == home:
            found.append(bindir)  # e.g. ~/go/bin, ~/.local/bin: not the rest of that dotdir
        else:
            found.append(prefix)
    return [p for p in found if not _under(p, standard) and p != Path("/")]


@functools.cache
def default_system_paths() -> tuple[Path, ...]:
    """Host paths bound read-only at the same place in every bwrap sandbox (computed once)."""
    home = Path.home().resolve()
    paths = [Path(p) for p in STANDARD_PATHS if os.path.lexists(p)]
    paths += _toolchain_paths(home, os.environ.get("PATH", os.defpath))
    unique: list[Path] = []
    for p in paths:  # drop duplicates and paths already inside another one
        if p not in unique and not _under(p, [q for q in paths if q != p and not q.is_symlink()]):
            unique.append(p)
    return tuple(unique)


@functools.cache
def _probe(bwrap: str) -> None:
    """Fail early, with the fix, when bwrap cannot create the namespaces we use."""
    argv = [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--proc", "/proc", "--dev", "/dev", "--die-with-parent", "true"]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SandboxUnavailable(f"bwrap at {bwrap} does not run ({e}); {INSTALL_HINT}") from None
    if done.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap cannot create namespaces here: {done.stderr.strip() or done.returncode}. "
            "Inside a container, start it with --privileged (or --security-opt seccomp=unconfined "
            "--cap-add SYS_ADMIN); on hosts that restrict user namespaces allow them (e.g. "
            "sysctl kernel.apparmor_restrict_unprivileged_userns=0); or choose another backend "
            "(sandbox.backend=docker, or none to run without isolation)."
        )


@functools.cache
def _supports_size(bwrap: str) -> bool:
    return "--size" in subprocess.run([bwrap, "--help"], capture_output=True, text=True, check=False).stdout


class BwrapSandbox:
    """Runs commands under bubblewrap; see the module docstring for what is visible and enforced."""

    name = "bwrap"

    def __init__(
        self,
        *,
        system_paths: Sequence[Path] | None = None,
        extra_system_paths: Sequence[Path] = (),
        use_cgroups: bool = True,
        env_defaults: Mapping[str, str] | None = None,
    ) -> None:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable(f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}")
        _probe(bwrap)
        self.bwrap = bwrap
        base = list(default_system_paths() if system_paths is None else system_paths)
        self.system_paths = tuple(base + [Path(p) for p in extra_system_paths])
        self.home = self.private_home()
        self.enforcer = LimitEnforcer.detect(use_cgroups)
        self._running = Running()
        if self.enforcer.prlimit is None:
            raise SandboxUnavailable("prlimit is missing; install it with `apt-get install util-linux`")
        self.default_path = self._default_path() if env_defaults is None else env_defaults.get("PATH", "")
        self.env_defaults = dict(env_defaults) if env_defaults is not None else {
            "PATH": self.default_path, "HOME": self.home or "/tmp", "LANG": "C.UTF-8"}
        """What a command's environment holds unless `env` sets it (default: PATH, HOME, LANG)."""

    @staticmethod
    def private_home() -> str | None:
        """The harness's HOME path, made a private tmpfs inside (None when it is / or a system dir)."""
        home = Path.home()
        return str(home) if home != Path("/") and not _under(home.resolve(), _standard()) else None

    def describe(self) -> dict[str, str]:
        """Facts for `hgm doctor`: how isolation and limits work on this machine."""
        version = subprocess.run([self.bwrap, "--version"], capture_output=True, text=True, check=False).stdout.strip()
        limits = self.enforcer.kind + (f" ({self.enforcer.reason})" if self.enforcer.reason else "")
        return {
            "bwrap": f"{self.bwrap} ({version})",
            "limits": limits,
            "visible read-only": " ".join(str(p) for p in self.system_paths),
            "PATH inside": self.default_path,
        }

    def _default_path(self) -> str:
        """PATH inside: the harness python's bin, then the harness PATH dirs visible inside."""
        visible = [Path(p).resolve() for p in self.system_paths]
        dirs = [str(Path(sys.base_prefix) / "bin")]
        for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/local/bin", "/usr/bin", "/bin"]:
            if d and d not in dirs and Path(d).is_dir() and _under(Path(d).resolve(), visible):
                dirs.append(d)
        return os.pathsep.join(dirs)

    def _argv(self, argv: Sequence[str], cwd: str, mounts: Sequence[Mount], limits: Limits) -> list[str]:
        args = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
                "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox",
                "--cap-drop", "ALL", "--dev", "/dev", "--proc", "/proc",
                "--ro-bind", "/proc/sys", "/proc/sys"]  # fmt: skip
        # Private scratch dirs; each capped at the memory limit where bwrap can (--size, >= 0.7).
        size = ["--size", str(limits.memory_mb * 1024 * 1024)] if _supports_size(self.bwrap) else []
        for scratch in ["/dev/shm", "/tmp", "/var/tmp"] + ([self.home] if self.home else []):
            args += [*size, "--tmpfs", scratch]
        for p in sorted(self.system_paths, key=lambda p: len(p.parts)):
            if p.is_symlink() and not os.path.isabs(os.readlink(p)):
                args += ["--symlink", os.readlink(p), str(p)]  # merged /usr: /bin -> usr/bin
            else:
                args += ["--ro-bind", str(p), str(p)]
        for m in sorted(mounts, key=lambda m: len(Path(m.target).parts)):
            if not os.path.isabs(m.target):
                raise ValueError(f"mount target must be an absolute path: {m.target!r}")
            if not os.path.lexists(m.source):
                raise SandboxUnavailable(f"mount source {m.source} does not exist (target {m.target})")
            args += ["--ro-bind" if m.read_only else "--bind", str(m.source), m.target]
        return args + ["--chdir", cwd, "--", *argv]

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
        """Run argv in a fresh bwrap sandbox (see module docstring)."""
        full_env = {**self.env_defaults, **(env or {})}
        with self._running.command() as cmd, self.enforcer.job(limits) as job:
            result = run_capped(
                job.wrap(self._argv(argv, cwd, mounts, limits)),
                env=full_env,
                cwd=None,
                stdin=stdin,
                timeout=timeout,
                output_bytes=limits.output_bytes,
                kill=lambda proc: job.kill(outer_pid=proc.pid),
                on_start=lambda proc: cmd.started(lambda: job.kill(outer_pid=proc.pid), job.remove),
            )
            cmd.check()
            job.check_joined(result)
            return job.annotate(result)

    def shutdown(self, timeout: float = 10.0) -> int:
        """Kill every running command's process tree and remove its cgroup; refuse new commands."""
        return self._running.shutdown(timeout)
