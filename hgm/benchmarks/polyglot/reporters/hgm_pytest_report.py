"""hgm's pytest plugin: per-test results, signed, to the harness's report file (see ../report.py).

Loaded with `-p hgm_pytest_report` before any test module (and so before the solution) is
imported. It reads the run's key from stdin at import, then signs every record it writes.
"""

import hashlib
import hmac
import os


def _read_key() -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 128)
        if not chunk:
            break
        data += chunk
    return data.strip()


def _writer():
    key = _read_key()
    path = os.environ.get("HGM_REPORT", "")
    if not key or not path:
        return lambda *fields: None  # no channel: the harness sees no report and fails the run
    out = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    seq = [0]

    def emit(*fields: str) -> None:
        body = " ".join([str(seq[0]), *fields])
        tag = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
        os.write(out, f"{body} {tag}\n".encode())
        seq[0] += 1

    return emit


_emit = _writer()
_emit("start", "pytest")
_outcomes: dict = {}


def pytest_runtest_logreport(report) -> None:
    """setup, call, teardown of one test: one record after teardown (failed if any phase failed)."""
    outcome = _outcomes.get(report.nodeid, "passed")
    if report.outcome == "failed":
        outcome = "failed"
    elif report.outcome == "skipped" and outcome == "passed":
        outcome = "skipped"
    _outcomes[report.nodeid] = outcome
    if report.when == "teardown":
        _emit("test", report.nodeid.encode().hex(), _outcomes.pop(report.nodeid))


def pytest_sessionfinish(session, exitstatus) -> None:
    _emit("end", "ok" if int(exitstatus) == 0 else "fail")
