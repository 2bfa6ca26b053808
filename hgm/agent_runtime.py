"""Running one agent (a directory of untrusted code) in the sandbox.

`agent_venv(agent_dir)` builds a virtualenv for the agent's requirements.txt once per
(requirements, interpreter), outside the sandbox, under cache_dir()/venvs: built in a temporary
directory under a file lock, then renamed into place, so concurrent callers never see half a venv.

`run_agent(...)` runs `python coding_agent.py ...` in the sandbox, where only these are visible
besides the backend's read-only system (which includes the base interpreter the venv links to):
the task workspace (rw), the agent's code (ro), its venv (ro), a per-session directory holding the
statement and the chat log (rw), and the LLM gateway's socket. Every path keeps its host name
inside the sandbox, so the same argv works for every backend. The environment holds the session
token, never a real API key.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from rich.console import Console
from rich.errors import LiveError

from hgm.errors import VenvBuildError
from hgm.llm.gateway import Gateway
from hgm.markup import literal
from hgm.paths import cache_dir
from hgm.sandbox.base import Limits, Mount, Sandbox

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def _base_python() -> Path:
    """The interpreter venvs are made from (the real one, not a venv or a pyenv shim)."""
    exe = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return exe if exe.exists() else Path(sys.executable).resolve()


def venv_key(requirements: str) -> str:
    """Hash of the requirements and the interpreter they are installed for."""
    h = hashlib.sha256()
    for part in (requirements.strip(), sys.version, str(_base_python())):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:20]


def _requirements(agent_dir: Path) -> str:
    req_file = agent_dir / "requirements.txt"
    return req_file.read_text() if req_file.is_file() else ""


def venv_dir(agent_dir: Path) -> Path:
    """Where the venv of agent_dir/requirements.txt is (or will be) cached."""
    return cache_dir() / "venvs" / venv_key(_requirements(agent_dir))


def agent_venv(agent_dir: Path, *, console: Console | None = None) -> Path:
    """The venv holding agent_dir/requirements.txt (built on first use, then cached)."""
    requirements = _requirements(agent_dir)
    venv = venv_dir(agent_dir)
    root, key = venv.parent, venv.name
    root.mkdir(parents=True, exist_ok=True)
    if (venv / "bin" / "python").exists():
        return venv
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / "bin" / "python").exists():  # another process built it while we waited
            return venv
        tmp = root / f"{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _build(tmp, requirements, console or Console(stderr=True))
            _retarget(tmp, venv)
            os.replace(tmp, venv)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return venv


def check_requirements(requirements: str) -> None:
    """Only plain `name[extras] specifier ; marker` lines: no pip options, paths or URLs. The venv is
    built outside the sandbox, and with wheels only (below), nothing of the agent's runs there."""
    for line in requirements.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("-") or Requirement(line).url:
                raise InvalidRequirement("pip options, paths and URLs are not allowed")
        except InvalidRequirement as e:
            raise VenvBuildError(f"agent requirements.txt line {line!r} is not a plain requirement ({e}); "
                                 "use lines like `openai>=1.40,<4`") from None


def _build(tmp: Path, requirements: str, console: Console) -> None:
    check_requirements(requirements)
    # No pip inside (agents have no network to use it); the harness's pip installs into the venv.
    subprocess.run([str(_base_python()), "-m", "venv", "--without-pip", str(tmp)], check=True, capture_output=True)
    if not requirements.strip():
        return
    (tmp / "requirements.txt").write_text(requirements)
    log = tmp / "pip.log"
    argv = [sys.executable, "-m", "pip", "--python", str(tmp / "bin" / "python"), "install",
            "--disable-pip-version-check", "--no-input", "--only-binary=:all:", "-r", str(tmp / "requirements.txt")]
    with _status(console, f"[bold]installing agent requirements into venv {tmp.name}[/] (pip)") as update, \
            open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if line.strip():
                update(f"[bold]agent venv[/] {literal(line.strip()[:100])}")
        code = proc.wait()
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise VenvBuildError(f"pip could not install the agent's requirements (exit {code}):\n{tail}\n"
                             "Check the network access to PyPI and the agent's requirements.txt.")


@contextmanager
def _status(console: Console, text: str) -> Iterator[Callable[[str], None]]:
    """A rich spinner with the latest pip line; plain lines when another live display is active
    (e.g. the search's progress bar, in another thread)."""
    status = console.status(text)
    try:
        status.start()
    except LiveError:
        console.print(text)
        yield lambda _line: None
        console.print("[bold]agent venv[/] done")
        return
    try:
        yield status.update
    finally:
        status.stop()


def _retarget(tmp: Path, final: Path) -> None:
    """Point the venv's scripts (shebangs, activate) at the path it is renamed to."""
    old, new = str(tmp).encode(), str(final).encode()
    for path in [*(tmp / "bin").iterdir(), tmp / "pyvenv.cfg"]:
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if old in data:
                path.write_bytes(data.replace(old, new))


@dataclass(frozen=True)
class AgentLLM:
    """How the agent reaches its LLM: the gateway socket, a per-session token, a model name."""

    socket: Path
    token: str
    model: str
    context_window: int | None = None
    """The model's context window in tokens (Gateway.context_window), passed as AGENT_CONTEXT_WINDOW."""


@dataclass(frozen=True)
class AgentRun:
    exit_code: int
    timed_out: bool
    duration_s: float
    stdout_path: Path
    stderr_path: Path
    chat_path: Path
    output_truncated: bool = False


def agent_command(agent_dir: Path, venv: Path, workspace: Path, base_commit: str, session_dir: Path, *,
                  language: str, model: str, self_improve: bool, test_description: str) -> list[str]:
    # -E: an instance image's PYTHONPATH / PYTHONHOME (SWE-bench) must not reach the agent's own
    # interpreter, only the commands it runs; -u and -B stand in for the PYTHON* settings -E ignores.
    argv = [str(venv / "bin" / "python"), "-E", "-u", "-B", str(agent_dir / "coding_agent.py"),
            "--problem-statement-file", str(session_dir / "statement.md"), "--git-dir", str(workspace),
            "--base-commit", base_commit, "--chat-history-file", str(session_dir / "chat.md"),
            "--language", language, "--model", model]
    if self_improve:
        argv.append("--self-improve")
    if test_description:
        argv += ["--test-description", test_description]
    return argv


def agent_mounts(agent_dir: Path, venv: Path, workspace: Path, session_dir: Path, socket: Path,
                 workdir: str | None = None) -> list[Mount]:
    """Exactly what the agent may see (besides the read-only system); the workspace at `workdir`
    when given (SWE-bench's /testbed), else at its own path."""
    return [
        Mount(workspace, workdir or str(workspace), read_only=False),
        Mount(session_dir, str(session_dir), read_only=False),
        Mount(agent_dir, str(agent_dir), read_only=True),
        Mount(venv, str(venv), read_only=True),
        Mount(socket, str(socket), read_only=False),
    ]  # the base interpreter the venv links to is part of the backend's read-only system


def agent_env(llm: AgentLLM, venv: Path, timeout_s: float, base_path: str = SYSTEM_PATH,
              task_path: str | None = None) -> dict[str, str]:
    """The agent's whole environment on top of the sandbox's: nothing from the harness, no real key.
    `base_path` is the sandbox's PATH (toolchains included), after the venv's bin; a task's own PATH
    (SWE-bench: the instance's Python environment) goes first, so the commands the agent runs use
    the task's tools. With a task PATH the sandbox is an instance image's, whose own Env (LANG,
    PYTHONPATH, ...) stays as the image sets it; only what is set here is layered on top."""
    return {
        **({"PATH": f"{task_path}:{venv / 'bin'}"} if task_path else {"PATH": f"{venv / 'bin'}:{base_path}",
                                                                       "LANG": "C.UTF-8"}),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **Gateway.agent_env(llm.token, llm.socket),  # HGM_LLM_SOCKET, *_BASE_URL, OPENAI_API_KEY=token
        # Let the agent wind down on its own a little before the sandbox kills it.
        "AGENT_MAX_WALL_S": str(max(30.0, timeout_s * 0.9 - 30)),
        **({"AGENT_CONTEXT_WINDOW": str(llm.context_window)} if llm.context_window else {}),
    }


def run_agent(agent_dir: Path, workspace: Path, base_commit: str, statement: str, *, language: str,
              llm: AgentLLM, sandbox: Sandbox, limits: Limits, timeout_s: float, log_dir: Path,
              self_improve: bool = False, test_description: str = "", workdir: str | None = None,
              path: str | None = None, console: Console | None = None, mounts: list[Mount] | None = None,
              env: dict[str, str] | None = None) -> AgentRun:
    """Run the agent once on `workspace`; it edits files there. A crash or timeout is a result.
    `workdir`: where the workspace appears inside the sandbox (default: its own path); `path`: the
    task's PATH inside, before the agent's venv; `mounts`: more read-only mounts (files a person granted);
    `env`: more environment variables."""
    agent_dir, workspace = agent_dir.resolve(), workspace.resolve()
    venv = agent_venv(agent_dir, console=console)
    session_dir = (log_dir / "agent").resolve()
    session_dir.mkdir(parents=True, exist_ok=True)
    (session_dir / "statement.md").write_text(statement)
    argv = agent_command(agent_dir, venv, Path(workdir or workspace), base_commit, session_dir, language=language,
                         model=llm.model, self_improve=self_improve, test_description=test_description)
    env = {**agent_env(llm, venv, timeout_s, sandbox.default_path, path), **(env or {})}
    mounts = agent_mounts(agent_dir, venv, workspace, session_dir, llm.socket, workdir) + list(mounts or [])
    start = time.monotonic()
    result = sandbox.exec(argv, cwd=workdir or str(workspace), env=env, timeout=timeout_s, mounts=mounts, limits=limits)
    duration = time.monotonic() - start
    for planted in session_dir.rglob("*"):  # a symlink planted here would make the harness read host files
        if planted.is_symlink():
            planted.unlink()
    stdout, stderr = log_dir / "agent_stdout.txt", log_dir / "agent_stderr.txt"
    stdout.write_text(result.stdout)
    stderr.write_text(result.stderr)
    return AgentRun(result.returncode, result.timed_out, duration, stdout, stderr, session_dir / "chat.md",
                    result.output_truncated)
