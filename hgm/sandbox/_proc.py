"""Shared process plumbing of the local backends: run a child, cap its output, kill its tree.

`run_capped` starts argv in a new session (so the process group is the tree to kill), feeds
stdin, and reads stdout and stderr concurrently in one selector loop: each stream keeps its
first `output_bytes` bytes; the rest is drained into /dev/null (splice, no copy through Python)
so a program printing gigabytes neither blocks on a full pipe nor grows the harness's memory.

When the deadline passes, or when the main process exits while descendants still hold the
pipes open, `kill` is called; it must kill the whole tree (backends pass a function that
SIGKILLs the process group and, for bwrap, the sandbox's cgroup).
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from hgm.sandbox.base import ExecResult

_CHUNK = 1 << 20
_LINGER_S = 0.2
"""After the main process exits, how long descendants may keep the pipes open."""


def returncode_of(status: int) -> int:
    """Popen's returncode in shell convention: killed by signal N -> 128 + N (as bwrap, docker)."""
    return 128 - status if status < 0 else status


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by `pid` (started with start_new_session=True)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class _Capture:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def read_from(self, fd: int, devnull: int) -> bool:
        """Consume what `fd` has; False at EOF."""
        if len(self.data) >= self.limit:
            try:  # drain without copying through Python
                n = os.splice(fd, devnull, _CHUNK, flags=os.SPLICE_F_NONBLOCK)
            except BlockingIOError:
                return True
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                try:
                    n = len(os.read(fd, _CHUNK))  # no splice support here: copy and drop
                except BlockingIOError:
                    return True
            if n:
                self.truncated = True
            return n > 0
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return True
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
        self.data += chunk[:room]
        return bool(chunk)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def run_capped(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    stdin: str | None,
    timeout: float,
    output_bytes: int,
    kill: Callable[[subprocess.Popen[bytes]], None],
    on_start: Callable[[subprocess.Popen[bytes]], None] = lambda proc: None,
) -> ExecResult:
    """Run argv to completion or `timeout`. If argv[0] cannot be executed the result says so
    (127 not found / 126 not executable), as a shell would. `on_start` is called with the process
    as soon as it exists (if it raises, the process is killed and reaped first)."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError) as e:
        if cwd is not None and not os.path.isdir(cwd):
            raise  # the caller's mistake, not the command's
        code = 127 if isinstance(e, FileNotFoundError) else 126  # as a shell reports it
        return ExecResult(code, "", f"{argv[0]}: {e.strerror}\n", duration_s=time.monotonic() - start)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        on_start(proc)
    except BaseException:
        kill(proc)
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        raise
    captures = {proc.stdout.fileno(): _Capture(output_bytes), proc.stderr.fileno(): _Capture(output_bytes)}
    pending_input = (stdin or "").encode()
    stdin_fd = proc.stdin.fileno() if proc.stdin is not None else -1
    sel = selectors.DefaultSelector()
    for fd in captures:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    if proc.stdin is not None:
        if pending_input:
            os.set_blocking(stdin_fd, False)
            sel.register(stdin_fd, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()

    out_cap, err_cap = captures[proc.stdout.fileno()], captures[proc.stderr.fileno()]
    deadline = start + timeout
    timed_out = False
    exited_at: float | None = None
    killed_at: float | None = None
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        while sel.get_map():
            now = time.monotonic()
            if killed_at is None:
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if now >= deadline:
                    timed_out, killed_at = True, now
                    kill(proc)
                elif exited_at is not None and now >= exited_at + _LINGER_S:
                    killed_at = now  # main process gone, descendants hold the pipes: end the tree
                    kill(proc)
            elif now > killed_at + 5:
                break  # pipes held open by something outside our reach; stop reading
            for key, _ in sel.select(timeout=0.05):
                fd = key.fd
                if fd == stdin_fd:
                    try:
                        pending_input = pending_input[os.write(fd, pending_input[:65536]) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        pending_input = b""
                    if not pending_input:
                        sel.unregister(fd)
                        proc.stdin.close()  # type: ignore[union-attr]
                elif not captures[fd].read_from(fd, devnull):
                    sel.unregister(fd)
    finally:
        sel.close()
        os.close(devnull)
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
    try:
        status = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
        kill(proc)
        status = proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return ExecResult(
        returncode=returncode_of(status),
        stdout=out_cap.text(),
        stderr=err_cap.text(),
        timed_out=timed_out,
        duration_s=time.monotonic() - start,
        output_truncated=out_cap.truncated or err_cap.truncated,
    )
