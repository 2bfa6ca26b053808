"""The docker backend's I/O: feed stdin into, and demultiplex capped output out of, an attach socket.

Without a TTY the Docker Engine API (and Podman's) frames the attach stream: an 8-byte header
(stream id: 1 stdout, 2 stderr, 3 engine error; 3 zero bytes; payload length, big-endian) and
the payload. `pump` reads frames until the engine closes the stream (the container exited),
keeping the first `output_bytes` of each stream and dropping the rest while still reading it,
so a program printing gigabytes neither blocks nor grows the harness's memory.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

_CHUNK = 1 << 20
_AFTER_KILL_S = 5.0
"""After a kill, how long to wait for the engine to close the stream."""


class _Capture:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: memoryview) -> None:
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
        if room > 0:
            self.data += chunk[:room]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class Demux:
    """Incremental parser of the framed attach stream into capped stdout/stderr."""

    def __init__(self, output_bytes: int) -> None:
        self.stdout = _Capture(output_bytes)
        self.stderr = _Capture(output_bytes)
        self._header = bytearray()
        self._target: _Capture | None = None
        self._left = 0

    def feed(self, data: memoryview) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._left == 0:
                take = min(8 - len(self._header), n - i)
                self._header += data[i : i + take]
                i += take
                if len(self._header) == 8:
                    kind = self._header[0]
                    self._target = self.stdout if kind == 1 else self.stderr if kind in (2, 3) else None
                    self._left = int.from_bytes(self._header[4:8], "big")
                    self._header.clear()
                continue
            take = min(self._left, n - i)
            if self._target is not None:
                self._target.add(data[i : i + take])
            i += take
            self._left -= take


@dataclass(frozen=True)
class Streamed:
    stdout: str
    stderr: str
    truncated: bool
    timed_out: bool


def pump(
    sock: socket.socket, stdin: str | None, *, deadline: float, output_bytes: int, kill: Callable[[], None]
) -> Streamed:
    """Exchange data with an attached, started container until it exits or `deadline` passes
    (then `kill` is called once and the stream is read to its end, for at most a few seconds)."""
    demux = Demux(output_bytes)
    pending = (stdin or "").encode() if stdin is not None else None
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if pending is not None else 0))
    timed_out = False
    killed_at: float | None = None

    def stdin_done() -> None:
        nonlocal pending
        pending = None
        sel.modify(sock, selectors.EVENT_READ)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)  # EOF on the command's stdin

    try:
        if pending == b"":
            stdin_done()
        while True:
            now = time.monotonic()
            if killed_at is None and now >= deadline:
                timed_out, killed_at = True, now
                kill()
            elif killed_at is not None and now >= killed_at + _AFTER_KILL_S:
                break
            wait = (deadline if killed_at is None else killed_at + _AFTER_KILL_S) - now
            for _, events in sel.select(timeout=max(0.0, min(wait, 1.0))):
                if events & selectors.EVENT_WRITE and pending is not None:
                    try:
                        pending = pending[sock.send(pending[:65536]) :]
                    except BlockingIOError:
                        pass
                    except OSError:  # the command closed its stdin or exited
                        pending = b""
                    if not pending:
                        stdin_done()
                if events & selectors.EVENT_READ:
                    try:
                        n = sock.recv_into(buf)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        n = 0
                    if n == 0:
                        return Streamed(demux.stdout.text(), demux.stderr.text(),
                                        demux.stdout.truncated or demux.stderr.truncated, timed_out)  # fmt: skip
                    demux.feed(view[:n])
    finally:
        sel.close()
    return Streamed(
        demux.stdout.text(), demux.stderr.text(), demux.stdout.truncated or demux.stderr.truncated, timed_out
    )
