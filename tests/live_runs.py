"""Reports of a run that is going, then killed: the part tests/test_report.py (a simulated run) and
tests/test_report_browser.py (a scripted `hgm run`) share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hgm.domain import COUNTED, EvalStatus, ExpansionStatus
from hgm.store import RunStore


def hgm(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hgm.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "300"})


def counted(run: Path) -> int:
    """Evaluations the run has counted against its budget so far (0 while its store is being created)."""
    try:
        with RunStore.open(run, readonly=True) as s:
            return sum(e.status in COUNTED for e in s.evaluations())
    except Exception:  # not created yet
        return 0


def in_flight(run: Path) -> bool:
    """Whether the run's store holds work in flight (what makes a stopped run `killed`)."""
    with RunStore.open(run, readonly=True) as s:
        return any(e.status == EvalStatus.IN_FLIGHT for e in s.evaluations()) or \
            any(x.status == ExpansionStatus.IN_FLIGHT for x in s.expansions())


def report_live_then_kill(proc: subprocess.Popen, run: Path, *, results: int, live: Path, timeout_s: float) -> None:
    """Once the run `proc` writes in `run` has counted `results` evaluations, report it to `live`
    (the page must say it is running); then SIGKILL `proc`, whatever happened."""
    try:
        end = time.monotonic() + timeout_s
        while counted(run) < results:
            assert proc.poll() is None and time.monotonic() < end, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        done = hgm("report", str(run), "-o", str(live))
        assert done.returncode == 0, done.stderr
        assert "· running ·" in live.read_text()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
