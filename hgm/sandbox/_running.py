"""What a backend has running, so that `shutdown` can end all of it (a second Ctrl-C).

Each exec holds a slot while it runs (`Running.command`), and says how to kill what it started
and how to clean up after it once it has (`Command.started`). `shutdown` refuses new commands,
kills the running ones, waits for their own exec calls to clean up (cgroups, containers), and
cleans up itself after any that did not within the timeout. A command started after shutdown
began is killed at once; an exec whose command was killed by shutdown raises SandboxClosed, so
the work is booked as interrupted, never as the agent's failure.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from hgm.errors import SandboxClosed

log = logging.getLogger(__name__)


class Command:
    """One exec's slot in `Running`."""

    def __init__(self, running: Running) -> None:
        self._running = running
        self.kill: Callable[[], None] | None = None
        self.cleanup: Callable[[], None] | None = None

    def started(self, kill: Callable[[], None], cleanup: Callable[[], None] | None = None) -> None:
        """Register how to end this command; if shutdown has begun, end it now and raise SandboxClosed."""
        with self._running.lock:
            self.kill, self.cleanup = kill, cleanup
            closed = self._running.closed
        if closed:
            kill()
            raise SandboxClosed("the sandbox was shut down (the harness is stopping); the command was killed")

    def check(self) -> None:
        """Raise SandboxClosed if shutdown began while the command ran (it was killed, not finished)."""
        if self._running.closed:
            raise SandboxClosed("the sandbox was shut down (the harness is stopping); the command was killed")


class Running:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closed = False
        self._commands: set[Command] = set()
        self._idle = threading.Condition(self.lock)

    @contextlib.contextmanager
    def command(self) -> Iterator[Command]:
        cmd = Command(self)
        with self.lock:
            if self.closed:
                raise SandboxClosed("the sandbox was shut down (the harness is stopping); no new commands")
            self._commands.add(cmd)
        try:
            yield cmd
        finally:
            with self.lock:
                self._commands.discard(cmd)
                self._idle.notify_all()

    def shutdown(self, timeout: float) -> int:
        """Refuse new commands, kill the running ones, wait up to `timeout` s for their exec calls to
        clean up, then clean up after the rest here. Returns how many were running."""
        with self.lock:
            self.closed = True
            running = list(self._commands)
        for cmd in running:
            if cmd.kill is not None:
                with contextlib.suppress(Exception):
                    cmd.kill()
        end = time.monotonic() + timeout
        with self.lock:
            while self._commands and time.monotonic() < end:
                self._idle.wait(max(0.0, end - time.monotonic()))
            left = list(self._commands)
        for cmd in left:
            log.warning("sandbox: a command did not end within %.0f s of shutdown; cleaning up after it", timeout)
            for step in (cmd.kill, cmd.cleanup):
                if step is not None:
                    with contextlib.suppress(Exception):
                        step()
        return len(running)
