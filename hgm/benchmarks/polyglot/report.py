"""The channel a Polyglot test run reports through, and reading it back (the harness's side).

Each test run gets a fresh random key. The harness writes it to the runner's stdin (never to a
file or an environment variable); hgm's reporter inside the runner (reporters/: a pytest plugin,
a jest reporter, a JUnit listener, a Go TestMain, a Rust guard per test, a Catch2 listener)
reads it before the solution is loaded and from then on appends one line per record to a report
file in a directory the harness created outside the scoring copy:

    <seq> start <runner>
    <seq> test <name, hex of UTF-8> <outcome>       passed | failed | skipped (Rust: returned | panicked)
    <seq> tamper <what, hex of UTF-8>                the reporter found the test framework changed
    <seq> end ok|fail                                the runner's own verdict at its end of run

each line followed by a space and the hex HMAC-SHA256 of everything before it under the key.
Sequence numbers count from 0 with no gap. A line the key does not sign, a gap, a record after
the end: the report is not authentic, and `Report.problem` says why.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_REPORT_BYTES = 10_000_000


def new_key() -> str:
    return secrets.token_hex(32)


def sign(key: str, body: str) -> str:
    return hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()


@dataclass
class Report:
    """What one or more report files say, once authenticated."""

    tests: list[tuple[str, str]] = field(default_factory=list)
    """(test name, outcome) in the order the runner reported them."""
    ends: list[str] = field(default_factory=list)
    """The end-of-run records' verdicts ("ok" / "fail"), one per report file that has one."""
    problem: str | None = None
    """The first reason the report cannot be trusted, or None."""
    tampering: list[str] = field(default_factory=list)
    """What the reporter found changed in the test framework while the tests ran (its snapshots)."""


def read_report(path: Path, key: str, into: Report | None = None) -> Report:
    """Authenticate and parse one report file (adding to `into`); see the module docstring."""
    report = into or Report()
    if report.problem:
        return report
    try:  # the sandbox could have put a FIFO or a symlink (to anything on the host) there
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        report.problem = f"no report file {path.name} (the runner never reported, or the report was deleted)"
        return report
    except OSError as e:
        report.problem = f"report file {path.name} cannot be read ({e.strerror})"
        return report
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            report.problem = f"report file {path.name} is not a regular file"
            return report
        raw = f.read(MAX_REPORT_BYTES + 1)
    if len(raw) > MAX_REPORT_BYTES:
        report.problem = f"{path.name} is larger than {MAX_REPORT_BYTES} bytes"
        return report
    lines = raw.split(b"\n")
    if lines[-1]:
        report.problem = f"{path.name}: the last line is cut off"
        return report
    ended = False
    for number, line in enumerate(lines[:-1]):
        body, _, tag = line.decode("utf-8", errors="replace").rpartition(" ")
        fields = body.split(" ")
        where = f"{path.name} line {number + 1}"
        if not hmac.compare_digest(sign(key, body), tag):
            report.problem = f"{where} is not signed by the run's key (forged or altered)"
        elif fields[0] != str(number):
            report.problem = f"{where}: records missing, repeated or reordered"
        elif (number == 0) != (fields[1:2] == ["start"]):
            report.problem = f"{where}: a report starts with one start record"
        elif ended:
            report.problem = f"{where}: a record after the end of run"
        elif fields[1] == "test" and len(fields) == 4:
            report.tests.append((_unhex(fields[2]), fields[3]))
        elif fields[1] == "tamper" and len(fields) == 3:
            report.tampering.append(_unhex(fields[2]))
        elif fields[1] == "end" and len(fields) == 3:
            report.ends.append(fields[2])
            ended = True
        elif fields[1] != "start":
            report.problem = f"{where}: unknown record {fields[1]!r}"
        if report.problem:
            return report
    if not lines[:-1]:
        report.problem = f"{path.name} is empty"
    return report


def _unhex(text: str) -> str:
    try:
        return bytes.fromhex(text).decode("utf-8", errors="replace")
    except ValueError:
        return text
