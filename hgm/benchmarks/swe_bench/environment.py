"""Instance environments: the image a SWE-bench task runs in, and what hgm derives from it.

The image is the one source of truth, on both backends:

- docker: every exec is a fresh container of the instance image (`swebench/sweb.eval.x86_64.*`,
  pulled from its registry, or built from a task repo's Dockerfile through the Docker Engine API):
  `hgm.sandbox.docker.DockerSandbox` with that image and `image_env=True`.
- bwrap: the image's root filesystem, exported once to cache_dir()/swe_bench/rootfs/<image id>,
  replaces the host's system inside bwrap (`hgm.sandbox.rootfs.RootfsSandbox`): the same files,
  Python and test runner as in the container. Files an export has in common with an earlier one
  (the shared base layers) are hard links to one copy.
- Environment variables: on both backends a command starts from the image's config Env (PATH,
  PYTHONPATH, VIRTUAL_ENV, LANG, ...), as the official harness's `docker exec` does; the export
  records it (`.hgm-env.json` beside the root filesystem, `env` in the testbed's env.json). What
  hgm layers on top, deliberately: HOME (a private tmpfs: the system is read-only), for grading
  nothing else; for the agent its PATH (the conda env `testbed` when the image has one, then the
  image's PATH, then the agent's venv), the gateway socket and base URLs, the session token,
  PYTHONUNBUFFERED, PYTHONDONTWRITEBYTECODE and the agent's wall-clock hint (hgm/agent_runtime.py).
- The pristine /testbed of the image (with its .git, as the image has it) is exported once to
  cache_dir()/swe_bench/testbeds/<image id>/; agent workspaces and scoring copies are made from
  it on the host and mounted at /testbed (the containers' root filesystem stays read-only).

Exports are built in a temporary directory under a file lock and renamed into place, so
concurrent workers never see half of one. An image that is missing and cannot be pulled or
built raises `EnvironmentUnavailable` (an infra error for the evaluation, never the agent's).
"""

from __future__ import annotations

import contextlib
import fcntl
import filecmp
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hgm.errors import EnvironmentUnavailable, SandboxClosed, SandboxUnavailable
from hgm.paths import cache_dir
from hgm.sandbox.base import Sandbox
from hgm.sandbox.rootfs import ENV_FILE, SKIP, image_env

if TYPE_CHECKING:
    import docker

    from hgm.benchmarks.swe_bench.dataset import SWEBenchTask

TESTBED = "/testbed"
CONDA_TESTBED_BIN = "/opt/miniconda3/envs/testbed/bin"
"""The official images' conda env `testbed` (activated by their .bashrc): first on the agent's PATH."""
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CONTEXT_LABEL = "hgm.swe_bench.context"
"""Label of images built from a task repo: the hash of the build context they were built from."""
Progress = Callable[[str, int, int], None]
"""on_progress(what, done, total): bytes of a pull, or 0/0 with a message."""


@dataclass(frozen=True)
class Environment:
    """One instance image, ready for a backend."""

    image: str
    image_id: str
    testbed: Path
    """Pristine /testbed (with .git) on the host."""
    tracked: tuple[str, ...]
    """Files git tracks in /testbed (kept tracked in the agent's one-commit repository)."""
    path: str
    """The agent's PATH inside: the conda env `testbed` when the image has it, then the image's own PATH."""
    env: Mapping[str, str]
    """The image's config Env: every command in the environment starts from it (module docstring)."""
    rootfs: Path | None = None
    """The image's root filesystem (bwrap only)."""


def _short(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:500]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _untar(chunks: Iterable[bytes], dest: Path, *excludes: str) -> None:
    """Unpack a tar stream with the system's tar (fast, keeps modes, links and owners as root)."""
    dest.mkdir(parents=True, exist_ok=True)
    argv = ["tar", "-x", "-f", "-", "-C", str(dest), "--anchored", *(f"--exclude={e}" for e in excludes)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
    finally:
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"tar -x into {dest} failed (exit {code}): {err.strip()[:500]}")


def share_identical_files(new: Path, others: Iterable[Path]) -> int:
    """Hard-link each regular file of the export `new` to the same file of an earlier export (same
    relative path, size, mode, owner, mtime and content), so that images built on the same base
    layers (the official ones share their OS and conda layers) keep one copy on disk. Exports are
    never written to (bwrap mounts them read-only), so sharing is safe. Returns the bytes saved."""
    others = [o for o in others if o != new]
    saved = 0
    for dirpath, _, files in os.walk(new):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                continue
            rel = os.path.relpath(path, new)
            for other in others:
                twin = os.path.join(other, rel)
                try:
                    ot = os.lstat(twin)
                except OSError:
                    continue
                if (ot.st_ino, ot.st_dev) == (st.st_ino, st.st_dev):
                    break
                if (stat.S_ISREG(ot.st_mode) and (ot.st_size, ot.st_mode, ot.st_uid, ot.st_gid, ot.st_mtime_ns)
                        == (st.st_size, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
                        and filecmp.cmp(path, twin, shallow=False)):
                    link = path + ".hgm-link"
                    try:
                        os.link(twin, link)
                        os.replace(link, path)
                    except OSError:  # another filesystem, the link limit: keep the copy
                        with contextlib.suppress(OSError):
                            os.unlink(link)
                        continue
                    saved += st.st_size
                    break
    return saved


class Environments:
    """Images, testbeds and root filesystems of SWE-bench instances (see the module docstring)."""

    def __init__(self, *, base: str | None = None, root: Path | None = None,
                 client: docker.DockerClient | None = None, nocache: bool = False) -> None:
        self.base = base
        """Build arg BASE for task-repo Dockerfiles (e.g. localhost/debian:bookworm without a registry)."""
        self.nocache = nocache
        """Build every layer again (no engine layer cache)."""
        self.root = root or cache_dir() / "swe_bench"
        self._client = client
        self._lock = threading.Lock()
        self._sandboxes: dict[tuple[str, str], Sandbox] = {}
        self._closed = False

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            from hgm.sandbox.docker import connect

            self._client = connect(timeout=3600)
        return self._client

    # -- images ------------------------------------------------------------------------------
    def image_id(self, image: str) -> str | None:
        import docker

        try:
            return str(self.client.images.get(image).id)
        except docker.errors.ImageNotFound:
            return None

    def context_hash(self, task: SWEBenchTask) -> str:
        """Hash of a task repo's build context and BASE: an image built from another is rebuilt."""
        assert task.build_context is not None
        h = hashlib.sha256(f"{self.base}\0".encode())
        for p in sorted(task.build_context.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(task.build_context).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
        return h.hexdigest()[:16]

    def ensure_image(self, task: SWEBenchTask, *, on_line: Callable[[str], None] = lambda line: None,
                     on_progress: Progress = lambda what, done, total: None) -> str:
        """The image's id: present (and, for a task repo, built from its current Dockerfile), else
        built (task repo) or pulled."""
        found = self.image_id(task.image)
        if found and task.build_context is not None:
            labels = self.client.images.get(task.image).labels or {}
            if labels.get(CONTEXT_LABEL) != self.context_hash(task):
                found = None
        if found:
            return found
        if task.build_context is not None:
            self.build(task, on_line=on_line)
        else:
            self.pull(task.image, on_progress=on_progress)
        found = self.image_id(task.image)
        if not found:
            raise EnvironmentUnavailable(f"image {task.image} is still missing after the build/pull")
        return found

    def pull(self, image: str, *, on_progress: Progress = lambda what, done, total: None) -> None:
        import docker

        repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        layers: dict[str, tuple[int, int]] = {}
        try:
            for event in self.client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
                if "error" in event:
                    raise docker.errors.APIError(str(event["error"]))
                detail = event.get("progressDetail") or {}
                if event.get("id") and detail.get("total"):
                    layers[event["id"]] = (int(detail.get("current", 0)), int(detail["total"]))
                    on_progress(image, sum(c for c, _ in layers.values()), sum(t for _, t in layers.values()))
        except docker.errors.DockerException as e:
            raise EnvironmentUnavailable(
                f"image {image} is not in the engine and could not be pulled ({_short(e)}). Pull it where a "
                "registry is reachable (`hgm benchmark fetch swe-bench` does it with progress), or load it "
                "with `docker load`.") from None

    def build(self, task: SWEBenchTask, *, on_line: Callable[[str], None] = lambda line: None) -> None:
        """Build a task repo's Dockerfile (its task directory is the context, plus certs/)."""
        import docker

        from hgm.sandbox.docker_image import EXTRA_CA_DIR

        assert task.build_context is not None
        with tempfile.TemporaryDirectory(prefix="hgm-sweb-build-") as tmp:
            context = Path(tmp) / "context"
            shutil.copytree(task.build_context, context)
            certs = context / "certs"
            certs.mkdir(exist_ok=True)
            (certs / "README").write_text("extra CA certificates of the build host (copied by hgm)\n")
            if EXTRA_CA_DIR.is_dir():
                for crt in EXTRA_CA_DIR.rglob("*.crt"):
                    shutil.copy(crt, certs / crt.name)
            try:
                stream = self.client.api.build(path=str(context), tag=task.image, rm=True, forcerm=True, decode=True,
                                               nocache=self.nocache,
                                               buildargs={"BASE": self.base} if self.base else None,
                                               labels={CONTEXT_LABEL: self.context_hash(task)})
                for chunk in stream:
                    if "error" in chunk:
                        detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                        raise docker.errors.BuildError(str(detail).strip(), iter([]))
                    for line in str(chunk.get("stream", "")).splitlines():
                        if line.strip():
                            on_line(line.rstrip())
            except docker.errors.DockerException as e:
                base = f" (base image {self.base})" if self.base else " (no registry? pass the base image: --base)"
                raise EnvironmentUnavailable(f"building {task.image} from {task.build_context}/Dockerfile "
                                             f"failed{base}: {_short(e)}") from None

    # -- exports -----------------------------------------------------------------------------
    @contextmanager
    def _container(self, image: str) -> Iterator[str]:
        """A created (never started) container of `image`, removed afterwards."""
        cid = self.client.api.create_container(image, command=["true"], labels={"hgm": "1", "hgm.export": "1"})["Id"]
        try:
            yield cid
        finally:
            self.client.api.remove_container(cid, force=True, v=True)

    def _env_of(self, image: str) -> dict[str, str]:
        """The image's config Env (Docker's default PATH when it sets none)."""
        return image_env(self.client.images.get(image).attrs.get("Config", {}).get("Env"))

    def _env_meta(self, image: str) -> dict[str, object]:
        """env.json's record of the image's environment: its Env, and the agent's PATH (as "path",
        which hgm versions that predate the Env record read from a shared cache)."""
        env = self._env_of(image)
        path = env["PATH"] if CONDA_TESTBED_BIN in env["PATH"] else f"{CONDA_TESTBED_BIN}:{env['PATH']}"
        return {"env": env, "path": path}

    def _testbed(self, image: str, image_id: str) -> Path:
        """cache/testbeds/<id>/ with testbed/, tracked (NUL-separated) and env.json."""
        key = image_id.split(":")[-1][:24]
        done = self.root / "testbeds" / key
        if (done / "env.json").is_file() and "env" in json.loads((done / "env.json").read_text()):
            return done
        with _locked(self.root / "locks" / f"testbed-{key}.lock"):
            if (done / "env.json").is_file():  # made before the image Env was recorded: add it
                meta = json.loads((done / "env.json").read_text())
                if "env" not in meta:
                    _write_atomic(done / "env.json", json.dumps({**meta, **self._env_meta(image)}))
                return done
            tmp = done.with_name(f"{key}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                with self._container(image) as cid:
                    stream, _ = self.client.api.get_archive(cid, TESTBED)
                    _untar(stream, tmp)
                if not (tmp / "testbed" / ".git").is_dir():
                    raise EnvironmentUnavailable(f"image {image} has no git repository at {TESTBED}")
                tracked = subprocess.run(
                    ["git", "-c", "safe.directory=*", "-c", "core.fsmonitor=false", "ls-files", "-z"],
                    cwd=tmp / "testbed",
                    env=_git_env(),
                    check=True,
                    capture_output=True,
                ).stdout
                (tmp / "tracked").write_bytes(tracked)
                (tmp / "env.json").write_text(json.dumps({"image": image, "id": image_id, **self._env_meta(image)}))
                os.replace(tmp, done)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return done

    def _rootfs(self, image: str, image_id: str) -> Path:
        key = image_id.split(":")[-1][:24]
        done = self.root / "rootfs" / key
        if (done / ".hgm-rootfs").is_file() and (done / ENV_FILE).is_file():
            return done
        with _locked(self.root / "locks" / f"rootfs-{key}.lock"):
            if (done / ".hgm-rootfs").is_file():
                if not (done / ENV_FILE).is_file():  # exported before the image Env was recorded
                    _write_atomic(done / ENV_FILE, json.dumps(self._env_of(image)))
                return done
            tmp = done.with_name(f"{key}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                with self._container(image) as cid:
                    _untar(self.client.api.export(cid), tmp, *(p for d in SKIP for p in (f"{d}/*", f"./{d}/*")))
                share_identical_files(tmp, [d for d in done.parent.iterdir() if (d / ".hgm-rootfs").is_file()])
                (tmp / ENV_FILE).write_text(json.dumps(self._env_of(image)))
                (tmp / ".hgm-rootfs").write_text(f"{image}\n{image_id}\n")
                os.replace(tmp, done)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return done

    def get(self, task: SWEBenchTask, *, backend: str, on_line: Callable[[str], None] = lambda line: None,
            on_progress: Progress = lambda what, done, total: None) -> Environment:
        """Everything `backend` needs for `task` (building, pulling and exporting once)."""
        try:
            key = hashlib.sha256(task.image.encode()).hexdigest()[:16]
            with _locked(self.root / "locks" / f"image-{key}.lock"):  # one build or pull per image at a time
                image_id = self.ensure_image(task, on_line=on_line, on_progress=on_progress)
            export = self._testbed(task.image, image_id)
            rootfs = self._rootfs(task.image, image_id) if backend == "bwrap" else None
        except SandboxUnavailable:  # no engine, or the image cannot be had: the message says what to do
            raise
        except Exception as e:  # noqa: BLE001 - the engine failing mid-way is an unavailable environment
            raise EnvironmentUnavailable(f"environment of {task.id} ({task.image}) unavailable: {_short(e)}") from e
        meta = json.loads((export / "env.json").read_text())
        tracked = tuple(p for p in (export / "tracked").read_bytes().decode(errors="surrogateescape").split("\0") if p)
        return Environment(task.image, image_id, export / "testbed", tracked, meta["path"], meta["env"], rootfs)

    def prepare(self, tasks: Sequence[SWEBenchTask], *, backend: str,
                on_line: Callable[[str], None] = lambda line: None,
                on_progress: Progress = lambda what, done, total: None) -> list[Environment]:
        return [self.get(t, backend=backend, on_line=on_line, on_progress=on_progress) for t in tasks]

    # -- sandboxes ---------------------------------------------------------------------------
    def sandbox(self, env: Environment, sandbox: Sandbox) -> Sandbox:
        """The run's sandbox backend, moved into the instance environment (one per backend and image,
        until `shutdown`)."""
        with self._lock:
            if self._closed:
                raise SandboxClosed("the instance environments were shut down (the harness is stopping)")
            key = (sandbox.name, env.image_id)
            if key not in self._sandboxes:
                self._sandboxes[key] = self._make_sandbox(env, sandbox)
            return self._sandboxes[key]

    def _make_sandbox(self, env: Environment, sandbox: Sandbox) -> Sandbox:
        if sandbox.name == "docker":
            from hgm.sandbox.docker import DockerSandbox

            return DockerSandbox(image=env.image, client=self.client, image_env=True)
        if sandbox.name == "bwrap":
            from hgm.sandbox.rootfs import RootfsSandbox

            assert env.rootfs is not None
            return RootfsSandbox(env.rootfs)
        raise SandboxUnavailable(f"SWE-bench runs in the instance's environment, which the {sandbox.name!r} backend "
                                 "cannot provide; use --set sandbox.backend=docker or bwrap")

    def shutdown(self, timeout: float = 10.0) -> int:
        """Shut down every instance sandbox (killing what runs in them, removing their containers and
        cgroups) and refuse new ones; returns how many commands were running."""
        with self._lock:
            self._closed = True
            boxes = list(self._sandboxes.values())
        return sum(box.shutdown(timeout) for box in boxes)


def _git_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", DEFAULT_PATH), "HOME": str(Path.home()), "LANG": "C.UTF-8",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
