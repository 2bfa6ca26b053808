"""bash tool: run one shell command in the repository, with a timeout and an output cap."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile

TIMEOUT_S = float(os.environ.get("AGENT_BASH_TIMEOUT_S", "120"))
MAX_OUTPUT_CHARS = 20_000


def tool_info() -> dict:
    return {
        "name": "bash",
        "description": (
            "Run a bash command in the repository directory and return its output (stdout and stderr "
            f"together) and exit code. Each call is a fresh shell: `cd` and variables do not persist. "
            f"Commands are killed after {TIMEOUT_S:.0f} s; long output is cut in the middle. "
            "There is no network and no interactive input."
        ),
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "The bash command to run."}},
            "required": ["command"],
        },
    }


def _read_capped(path: str, limit: int) -> str:
    """The whole file if small, else its head and tail around a note (never loads a flood)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size <= limit:
            return f.read().decode(errors="replace")
        head = f.read(limit // 2).decode(errors="replace")
        f.seek(size - limit // 2)
        tail = f.read().decode(errors="replace")
    return f"{head}\n... [{size - limit} bytes of output cut] ...\n{tail}"


def tool_function(command: str, timeout_s: float | None = None) -> str:
    timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
    with tempfile.NamedTemporaryFile(prefix="bash-out-", delete=False) as out:
        path = out.name
    try:
        with open(path, "wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", command], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code: int | str = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = f"killed after {timeout_s:.0f} s timeout"
        output = _read_capped(path, MAX_OUTPUT_CHARS)
    finally:
        os.unlink(path)
    return f"{output.rstrip()}\n[exit code: {code}]".lstrip()
