"""hgm's pytest plugin: per-test results, signed, to the harness's report file (see ../report.py).

Loaded with `-p hgm_pytest_report` before any test module (and so before the solution) is
imported. It reads the run's key from stdin at import, then signs every record it writes.

It also takes a snapshot of the test framework before the solution is imported (unittest's
TestCase and module, builtins, pytest's and pluggy's modules and classes, the registered hook
implementations, the trace and profile hooks) and compares it after every test and at the end of
the run: each difference found is a signed `tamper` record (the verdict is then failed, flagged).
"""

import builtins
import hashlib
import hmac
import os
import sys
import unittest
import unittest.case

import _pytest.fixtures
import _pytest.main
import _pytest.nodes
import _pytest.outcomes
import _pytest.python
import _pytest.reports
import _pytest.runner
import _pytest.skipping
import _pytest.unittest
import pluggy
import pytest

_WATCHED = (builtins, unittest, unittest.case, pytest, pluggy, _pytest.fixtures, _pytest.main, _pytest.nodes,
            _pytest.outcomes, _pytest.python, _pytest.reports, _pytest.runner, _pytest.skipping, _pytest.unittest,
            *(m for name, m in sorted(sys.modules.items()) if name.startswith("pluggy.")))


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


def _framework(pluginmanager=None) -> dict:
    """label -> object, for everything a solution could replace to make failing tests pass."""
    seen = {}
    for module in _WATCHED:
        seen[f"sys.modules[{module.__name__}]"] = sys.modules.get(module.__name__)
        for name, value in list(vars(module).items()):
            seen[f"{module.__name__}.{name}"] = value
            if isinstance(value, type) and value.__module__ == module.__name__:
                for attr, member in list(vars(value).items()):
                    if attr != "__dict__" and attr != "__weakref__":
                        seen[f"{module.__name__}.{name}.{attr}"] = member
    for name in ("settrace", "setprofile", "modules"):
        seen[f"sys.{name}"] = getattr(sys, name, None)
    seen["sys.gettrace()"], seen["sys.getprofile()"] = sys.gettrace(), sys.getprofile()
    if pluginmanager is not None:
        seen["plugins"] = frozenset(map(id, pluginmanager.get_plugins()))
        for name, caller in list(vars(pluginmanager.hook).items()):
            seen[f"hook {name}"] = caller
            if hasattr(caller, "get_hookimpls"):
                seen[f"hook {name} impls"] = tuple(i.function for i in caller.get_hookimpls())
    return seen


def _watcher(emit):
    """check(): emit a `tamper` record for what changed since the snapshot (each thing once)."""
    before = {}
    reported = set()
    is_tuple = (tuple, frozenset)

    def take(pluginmanager) -> None:
        before.update(_framework(pluginmanager))

    def check(pluginmanager) -> None:
        now = _framework(pluginmanager)
        changed = [label for label, value in before.items() if label not in reported and (
            label not in now or (now[label] != value if isinstance(value, is_tuple) else now[label] is not value))]
        if changed:
            reported.update(changed)
            emit("tamper", f"{len(changed)} changed: {', '.join(changed[:5])}".encode().hex())

    return take, check


_emit = _writer()
_emit("start", "pytest")
_outcomes: dict = {}
_snapshot, _check = _watcher(_emit)
_snapshot(None)
_config = []


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session) -> None:
    """All plugins are registered now, before collection imports the test modules."""
    _config.append(session.config)
    _snapshot(session.config.pluginmanager)


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
        _check(_config[0].pluginmanager if _config else None)


def pytest_sessionfinish(session, exitstatus) -> None:
    _check(session.config.pluginmanager)
    _emit("end", "ok" if int(exitstatus) == 0 else "fail")
