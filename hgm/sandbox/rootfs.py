"""rootfs backend: bwrap with an image's exported root filesystem as the read-only system.

How SWE-bench instance environments run without a container engine (the export itself is made
once through one: hgm/benchmarks/swe_bench/environment.py). Everything bwrap promises holds
(hgm/sandbox/bwrap.py: namespaces, no network, limits, timeouts, shutdown); what differs:

- The system is the image's, not the host's: each top-level directory of the export (merged-/usr
  symlinks resolved inside it) is bound read-only at its own place, except those bwrap makes
  itself or that stay private (`SKIP`: /proc, /dev, /tmp, /root, /testbed, ...). The harness's
  base interpreter is bound too (when it lives outside /usr), so a venv built on the host runs.
- Environment: the image's config Env (`ImageEnv`, recorded beside the export as
  `.hgm-env.json`) is what every command starts from, as `docker exec` starts from the container's:
  PATH, PYTHONPATH, VIRTUAL_ENV, LANG, ... Then HOME (the harness's home path: a private tmpfs,
  since the system is read-only), then `env` on top. Nothing is added that the image does not set
  (no LANG default).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from hgm.errors import SandboxUnavailable
from hgm.sandbox.base import ExecResult, Limits, Mount

SKIP = frozenset({"testbed", "proc", "dev", "sys", "tmp", "run", "root", "boot", "media", "mnt", "lost+found"})
"""Top-level directories of an image not bound (bwrap makes its own /proc, /dev and tmpfs scratch;
/root is the private HOME; /testbed is the workspace)."""
ENV_FILE = ".hgm-env.json"
"""Beside an export: the image's config Env, as a JSON object."""
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH when the image sets none (Docker's default)."""


def image_env(config_env: Sequence[str] | None) -> dict[str, str]:
    """An image's config Env (["K=V", ...]) as a dict, with Docker's default PATH when it sets none."""
    env = dict(e.partition("=")[::2] for e in config_env or [])
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def read_env(rootfs: Path) -> dict[str, str]:
    """The image Env recorded beside the export `rootfs`."""
    try:
        return {str(k): str(v) for k, v in json.loads((rootfs / ENV_FILE).read_text()).items()}
    except (OSError, ValueError) as e:
        raise SandboxUnavailable(f"{rootfs} has no readable image environment ({ENV_FILE}: {e}); remove the "
                                 "export and run `hgm benchmark fetch swe-bench` again") from None


def _host_python() -> list[Path]:
    """The harness's base interpreter: agent venvs built on the host link to it."""
    prefix = Path(sys.base_prefix).resolve()
    return [] if prefix in (Path("/"), Path("/usr"), Path("/usr/local")) else [prefix]


class RootfsSandbox:
    """Runs commands under bwrap on the image root filesystem `rootfs` (see module docstring)."""

    name = "rootfs"

    def __init__(self, rootfs: Path) -> None:
        from hgm.sandbox.bwrap import BwrapSandbox

        self.rootfs = rootfs
        self.image_config_env = read_env(rootfs)
        """The image's config Env: every command's environment starts from it."""
        home = BwrapSandbox.private_home()
        self.inner = BwrapSandbox(
            system_paths=_host_python(), env_defaults={**self.image_config_env, "HOME": home or "/tmp"}
        )
        self.default_path = self.image_config_env["PATH"]
        self.enforcer = self.inner.enforcer
        """How limits are enforced (bwrap's)."""
        self.system: list[Mount] = []
        for entry in sorted(rootfs.iterdir()):
            if entry.name in SKIP or entry.name.startswith("."):
                continue
            source = entry
            if entry.is_symlink():  # merged /usr: /bin -> usr/bin, resolved inside the rootfs
                source = rootfs / os.readlink(entry).lstrip("/")
                if not source.exists():
                    continue
            elif not entry.is_dir():
                continue
            self.system.append(Mount(source, f"/{entry.name}", read_only=True))

    def exec(self, argv: Sequence[str], *, cwd: str, env: Mapping[str, str] | None = None, timeout: float,
             mounts: Sequence[Mount] = (), limits: Limits = Limits(),  # noqa: B008 - frozen, as in the protocol
             stdin: str | None = None) -> ExecResult:
        """Run argv in a fresh bwrap sandbox on the image's system, with the image's environment."""
        return self.inner.exec(argv, cwd=cwd, env=env, timeout=timeout, mounts=[*self.system, *mounts],
                               limits=limits, stdin=stdin)

    def shutdown(self, timeout: float = 10.0) -> int:
        """Kill every running command's process tree and remove its cgroup; refuse new commands."""
        return self.inner.shutdown(timeout)
