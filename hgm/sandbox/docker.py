"""docker backend: each exec runs in a fresh container of the evaluation image (Docker or Podman).

Decisions (measured against Podman 4.3's Docker-compatible service, see scripts/setup_podman.sh):

- Engine: DOCKER_HOST when set (as docker-py reads it), else the first of the usual Docker and
  Podman sockets (`SOCKET_CANDIDATES`: rootful, then rootless) that accepts a connection
  (`find_engine`); so `hgm` works after scripts/setup_podman.sh with no export. Mount sources are
  host paths, so the engine must run on this machine.
- One container per exec, created, attached (stdin/stdout/stderr, before start so no output is
  missed), started, and removed in `finally` (after success, failure, timeout or Ctrl-C).
  Containers carry the labels `hgm=1`, `hgm.run`, `hgm.pid`, `hgm.host`; leftovers of dead
  harness processes are removed by `hgm doctor --clean` (`remove_leftovers`).
- Isolation: network_mode none; read-only root filesystem; fresh tmpfs at /tmp, /var/tmp and at
  the harness's HOME path (empty: Podman's copy-up of the image's files is turned off), so the
  same paths are writable as under bwrap; an init process (docker's tini / Podman's catatonit) is
  pid 1, so signals and exit codes behave as on the host and the whole tree dies with it.
- Mounts keep their targets; Unix sockets bind in and are connectable (the LLM gateway). The
  harness's base interpreter (`sys.base_prefix`, when it lives outside /usr) is bound read-only at
  its own path, so a venv built on the host by the harness runs inside, as under bwrap.
- Environment: exactly `env` plus PATH/HOME/LANG defaults: the command runs under `env -i`, so
  neither the image's ENV nor the engine's additions (HOSTNAME, container=...) leak in. Except
  with `image_env=True` (a SWE-bench instance environment): then the command starts from the
  container's environment, the image's config Env plus the engine's HOSTNAME, as the official
  harness's `docker exec` does, with HOME (the private tmpfs) and `env` on top.
- Limits: memory (swap included: no swap) and pids through the engine; RLIMIT_FSIZE and
  RLIMIT_CORE=0 by util-linux `prlimit` in front of the command. (Engine ulimits are avoided:
  given any, Podman adds nofile/nproc defaults of 1048576, which fail above the service's own.)
- Output: the multiplexed attach stream is read in one loop; each stream keeps its first
  `output_bytes` bytes and the rest is drained and dropped. The engine's log driver is `none`,
  so a gigabyte of output is not written to disk either.
- Timeout: the container is SIGKILLed (every process in it dies) and `timed_out` is set. The wait
  for its final state is bounded too: 10 s after the kill it is given up as killed (exit 137) and
  removed by force.
- Shutdown (`shutdown`, a second Ctrl-C): every running container is removed by force (which
  kills it); the exec calls running them raise SandboxClosed; new ones are refused.
- User: root inside (files the command creates in a workspace belong to the harness's root);
  a non-root harness on a rootful engine runs commands as its own uid:gid instead, so the
  workspace stays writable for it afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hgm.errors import SandboxUnavailable
from hgm.sandbox._docker_stream import pump
from hgm.sandbox._running import Running
from hgm.sandbox.base import ExecResult, Limits, Mount

if TYPE_CHECKING:
    import docker

    from hgm.config import SandboxConfig

log = logging.getLogger(__name__)

LABEL = "hgm"
DEFAULT_IMAGE = "hgm-eval:latest"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENGINE_FIX = (
    "Start Docker (e.g. `systemctl start docker`), or use Podman's Docker-compatible service: run "
    "`sudo scripts/setup_podman.sh` (hgm finds its socket; an engine elsewhere: export DOCKER_HOST=unix://PATH); "
    "or choose another backend (--set sandbox.backend=bwrap)."
)
_counter = itertools.count()


def socket_candidates() -> list[Path]:
    """Where Docker and Podman put their Docker-API socket, rootful first, then rootless
    (scripts/setup_podman.sh starts Podman's at /run/podman.sock)."""
    found = [Path("/var/run/docker.sock"), Path("/run/podman/podman.sock"), Path("/run/podman.sock")]
    if os.environ.get("XDG_RUNTIME_DIR"):
        found.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "podman" / "podman.sock")
    found.append(Path(f"/run/user/{os.getuid()}/podman/podman.sock"))
    return list(dict.fromkeys(found))


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def find_engine(candidates: Sequence[Path] | None = None) -> tuple[str | None, str]:
    """The Docker Engine API to use: (URL, how it was chosen). DOCKER_HOST when set always wins;
    else the first of `candidates` (default `socket_candidates()`) that accepts a connection;
    else (None, what was tried)."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"], "from DOCKER_HOST"
    candidates = socket_candidates() if candidates is None else list(candidates)
    for path in candidates:
        if path.is_socket() and _accepts(path):
            return f"unix://{path}", "found, DOCKER_HOST unset"
    return None, "DOCKER_HOST unset and no socket answers at " + ", ".join(map(str, candidates))


def connect(timeout: float = 60) -> docker.DockerClient:
    """A client of the engine `find_engine` names, or SandboxUnavailable saying how to start one."""
    try:
        import docker
    except ImportError:
        raise SandboxUnavailable("the `docker` Python package is missing: pip install 'docker>=7.1'") from None
    url, how = find_engine()
    if url is None:
        raise SandboxUnavailable(f"no Docker engine: {how}. {ENGINE_FIX}")
    import requests

    try:
        # from_env keeps DOCKER_TLS_VERIFY / DOCKER_CERT_PATH working with an explicit DOCKER_HOST
        client = docker.from_env(timeout=int(timeout)) if os.environ.get("DOCKER_HOST") else \
            docker.DockerClient(base_url=url, timeout=int(timeout))
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        raise SandboxUnavailable(f"no Docker engine answers at {url} ({_short(e)}). {ENGINE_FIX}") from None
    return client


def is_podman(client: docker.DockerClient) -> bool:
    """Whether the engine is Podman's Docker-compatible service."""
    components = client.version().get("Components") or []
    return any("podman" in str(c.get("Name", "")).lower() for c in components)


def image_present(client: docker.DockerClient, image: str) -> bool:
    import docker

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:1000]


def _host_python_mounts() -> list[Mount]:
    """The harness's base interpreter at its own path (for host-built venvs), unless it is in /usr."""
    prefix = Path(sys.base_prefix).resolve()
    if prefix in (Path("/"), Path("/usr"), Path("/usr/local")):
        return []
    return [Mount(prefix, str(prefix), read_only=True)]


class DockerSandbox:
    """Runs each command in a fresh container of `image`; see the module docstring."""

    name = "docker"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        image: str | None = None,
        run_id: str | None = None,
        client: docker.DockerClient | None = None,
        image_env: bool = False,
    ) -> None:
        self.client = client or connect()
        self.api = self.client.api
        self.image = image or (config.docker_image if config is not None else DEFAULT_IMAGE)
        if not image_present(self.client, self.image):
            raise SandboxUnavailable(
                f"docker image {self.image} not found in the engine; build it with `hgm docker build` "
                "(no registry here? `hgm docker build --base localhost/debian:bookworm` after "
                "scripts/setup_podman.sh)"
            )
        self.podman = is_podman(self.client)
        labels = self.client.images.get(self.image).labels or {}
        self.toolchains = frozenset(labels.get("hgm.toolchains", "").split())
        """Polyglot languages whose toolchains the image has (its `hgm.toolchains` label)."""
        self.run_id = re.sub(r"[^A-Za-z0-9_.-]", "-", run_id or os.environ.get("HGM_RUN_ID") or f"pid{os.getpid()}")
        self.home = str(Path.home())
        self.labels = {LABEL: "1", f"{LABEL}.run": self.run_id, f"{LABEL}.pid": str(os.getpid()),
                       f"{LABEL}.host": socket.gethostname()}  # fmt: skip
        rootless = any("rootless" in str(o) for o in self.client.info().get("SecurityOptions") or [])
        self.user = f"{os.getuid()}:{os.getgid()}" if os.getuid() != 0 and not rootless else None
        self.system_mounts = _host_python_mounts()
        self.image_env = image_env
        """Commands start from the image's environment (its config Env), not from nothing."""
        env = self.client.images.get(self.image).attrs.get("Config", {}).get("Env") or []
        self.default_path = (next((e.split("=", 1)[1] for e in env if e.startswith("PATH=")), CONTAINER_PATH)
                             if image_env else CONTAINER_PATH)
        """PATH a command gets unless `env` sets one."""
        self._running = Running()

    def _host_config(self, mounts: Sequence[Mount], limits: Limits) -> dict[str, Any]:
        from docker.types import LogConfig
        from docker.types import Mount as DockerMount

        binds: list[DockerMount] = []
        for m in [*self.system_mounts, *mounts]:
            source = Path(m.source).absolute()
            if not os.path.lexists(source):
                raise SandboxUnavailable(f"mount source {source} does not exist (target {m.target})")
            binds.append(DockerMount(m.target, str(source), type="bind", read_only=m.read_only))
        targets = {b["Target"] for b in binds}
        private = "rw,mode=1777" if self.user else "rw,mode=0700"
        tmpfs = {p: (f"{private},notmpcopyup" if self.podman else private) for p in ("/tmp", "/var/tmp", self.home)}
        mem = limits.memory_mb * 1024 * 1024
        return self.api.create_host_config(
            network_mode="none",
            init=True,
            read_only=True,
            tmpfs={p: opts for p, opts in tmpfs.items() if p not in targets},
            mounts=binds,
            mem_limit=mem,
            memswap_limit=mem,
            pids_limit=limits.pids,
            log_config=LogConfig(type="none"),
            security_opt=["no-new-privileges"],
        )

    def _command(self, argv: Sequence[str], env: Mapping[str, str] | None, limits: Limits) -> list[str]:
        if not argv:
            raise ValueError("argv is empty")
        fsize = limits.file_size_mb * 1024 * 1024
        rlimits = ["prlimit", f"--fsize={fsize}:{fsize}", "--core=0:0", "--"]
        if self.image_env:  # the container's environment; `env` goes in through the engine (prlimit on its PATH)
            return [*rlimits, *argv]
        if "=" in argv[0]:
            raise ValueError(f"argv[0] {argv[0]!r} contains '=' (env -i would take it for a variable)")
        full_env = {"PATH": CONTAINER_PATH, "HOME": self.home, "LANG": "C.UTF-8", **(env or {})}
        return [*rlimits, "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in full_env.items()), *argv]

    def _environment(self, env: Mapping[str, str] | None) -> dict[str, str] | None:
        """What the engine sets on top of the image's Env (image_env mode only)."""
        return {"HOME": self.home, **(env or {})} if self.image_env else None

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
        """Run argv in a fresh container (see module docstring); always removes the container."""
        import docker
        import requests

        start = time.monotonic()
        name = f"hgm-{self.run_id}-{os.getpid()}-{next(_counter)}"
        cid: str | None = None
        with self._running.command() as cmd:
            try:
                cid = self.api.create_container(
                    self.image, command=self._command(argv, env, limits), environment=self._environment(env),
                    name=name, working_dir=cwd,
                    host_config=self._host_config(mounts, limits), labels=self.labels, user=self.user,
                    stdin_open=stdin is not None,
                )["Id"]  # fmt: skip
                created = cid
                cmd.started(lambda: self._remove(created), lambda: self._remove(created))
                params = {"stdin": int(stdin is not None), "stdout": 1, "stderr": 1, "stream": 1}
                try:
                    sock = self.api.attach_socket(cid, params=params)._sock
                except docker.errors.APIError as e:
                    cmd.check()
                    raise SandboxUnavailable(f"container for {argv[0]} could not start: {_short(e)}") from None
                with contextlib.closing(sock):
                    self.api.start(cid)
                    deadline = start + timeout
                    out = pump(sock, stdin, deadline=deadline, output_bytes=limits.output_bytes,
                               kill=lambda: self._kill(created))  # fmt: skip
                cmd.check()
                state = self._final_state(cid, deadline=max(deadline, time.monotonic()) + 10)
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                cmd.check()  # removed by shutdown under our feet: SandboxClosed, not an engine error
                raise
            finally:
                self._remove(cid or name)
            cmd.check()
        result = ExecResult(
            returncode=int(state.get("ExitCode", 137)) if not out.timed_out else 137,
            stdout=out.stdout,
            stderr=out.stderr,
            timed_out=out.timed_out,
            duration_s=time.monotonic() - start,
            output_truncated=out.truncated,
        )
        if state.get("OOMKilled") and not out.timed_out:
            note = f"[sandbox] killed: memory limit of {limits.memory_mb} MB exceeded\n"
            result = replace(result, stderr=result.stderr + ("\n" if result.stderr else "") + note)
        return result

    def shutdown(self, timeout: float = 10.0) -> int:
        """Remove every running container by force (killing it); refuse new commands."""
        return self._running.shutdown(timeout)

    def _kill(self, cid: str) -> None:
        import docker

        with contextlib.suppress(docker.errors.APIError):
            self.api.kill(cid)

    def _final_state(self, cid: str, *, deadline: float) -> dict[str, Any]:
        """The container's State once it has exited (polling inspect: faster than /wait on Podman).
        Past `deadline` it is killed; if it still has not exited 10 s later it is given up as killed."""
        import docker

        delay, killed = 0.005, False
        while True:
            try:
                state = self.api.inspect_container(cid)["State"]
            except docker.errors.NotFound:  # removed under us (shutdown): it was killed
                return {"ExitCode": 137}
            if state.get("Status") in ("exited", "stopped", "dead"):
                return dict(state)
            if time.monotonic() > deadline:
                if killed:
                    log.warning("container %s did not exit 10 s after a kill (state %s); removing it by force",
                                cid[:12], state.get("Status"))
                    return {"ExitCode": 137}
                self._kill(cid)
                killed, deadline = True, time.monotonic() + 10
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _remove(self, ref: str) -> None:
        import docker

        try:
            self.api.remove_container(ref, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as e:
            log.warning("could not remove container %s (%s); `hgm doctor --clean` removes leftovers", ref, e)


def leftover_containers(client: docker.DockerClient) -> list[tuple[str, str, bool]]:
    """(name, run id, owner alive) of every hgm-labelled container; owner = the harness process."""
    host = socket.gethostname()
    out = []
    for c in client.api.containers(all=True, filters={"label": f"{LABEL}=1"}):
        labels = c.get("Labels") or {}
        pid = int(labels.get(f"{LABEL}.pid", "0") or 0)
        alive = labels.get(f"{LABEL}.host") == host and pid > 0 and _pid_alive(pid)
        name = (c.get("Names") or [c["Id"][:12]])[0].lstrip("/")
        out.append((name, labels.get(f"{LABEL}.run", "?"), alive))
    return out


def remove_leftovers(client: docker.DockerClient, *, include_live: bool = False) -> list[str]:
    """Remove hgm-labelled containers whose harness process is gone (or all); returns their names."""
    import docker

    removed = []
    for name, _, alive in leftover_containers(client):
        if alive and not include_live:
            continue
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(name, force=True, v=True)
            removed.append(name)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
