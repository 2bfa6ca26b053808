"""A run (2 workers) stopped by Ctrl-C, then killed with SIGKILL, resumes and finishes: nothing
finished is lost, the budget is spent exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hgm.domain import ErrorType, EvalStatus, ExpansionStatus, MetaKey
from hgm.store import RunStore

from llm_scripts import write_scripts

TASKS = "python__transpose,python__proverb,python__beer-song"
BUDGET = 5


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "300"}
    return subprocess.Popen([sys.executable, "-m", "hgm.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finished(run: Path) -> tuple[list[tuple], list[tuple]]:
    """Finished evaluations and expansions (ids, status...), read-only while the run writes."""
    if not (run / "run.sqlite").exists():
        return [], []
    try:
        with RunStore.open(run, readonly=True) as s:
            evals = [
                (e.id, e.node_id, e.task_id, e.status) for e in s.evaluations() if e.status != EvalStatus.IN_FLIGHT
            ]
            exps = [(x.id, x.parent_id, x.child_id, x.status, x.commit) for x in s.expansions()
                    if x.status != ExpansionStatus.IN_FLIGHT]
    except Exception:  # the store is being created
        return [], []
    return evals, exps


def wait_for(run: Path, proc: subprocess.Popen, done_evals: int, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        evals, _ = finished(run)
        if len([e for e in evals if e[3] != EvalStatus.INFRA_ERROR]) >= done_evals:
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.5)
    raise AssertionError(f"the run did not finish {done_evals} evaluations in {timeout} s")


@pytest.mark.slow
def test_ctrl_c_then_sigkill_then_resume_loses_nothing(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    proc = start(
        "run",
        "--tasks",
        TASKS,
        "--from",
        str(polyglot_path),
        "--sandbox",
        "bwrap",
        "--downstream-llm",
        models["downstream"],
        "--self-improve-llm",
        models["self_improve"],
        "--diagnose-llm",
        models["diagnose"],
        "--max-task-evals",
        str(BUDGET),
        "--initial-evals",
        "2",
        "--workers",
        "2",
        "--run-dir",
        str(run),
        "--set",
        "search.initial_expansions=1",
        "--set",
        "sandbox.agent_timeout_s=240",
    )
    wait_for(run, proc, 1)
    proc.send_signal(signal.SIGINT)  # first Ctrl-C: no new work, the work in flight finishes
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err[-3000:]
    assert f"hgm run --resume {run}" in err
    evals_1, exps_1 = finished(run)
    assert evals_1 and all(e[3] != EvalStatus.IN_FLIGHT for e in evals_1)
    assert "interrupted (signal 2)" in (run / "run.log").read_text()

    proc = start("run", "--resume", str(run))
    wait_for(run, proc, len([e for e in evals_1 if e[3] != EvalStatus.INFRA_ERROR]) + 1)
    time.sleep(1.0)  # let the next job get under way, so the kill cuts work in flight
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.communicate()
    evals_2, exps_2 = finished(run)
    assert set(evals_1) <= set(evals_2) and set(exps_1) <= set(exps_2)

    done = subprocess.run([sys.executable, "-m", "hgm.cli", "run", "--resume", str(run)], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final agent: node" in done.stderr
    evals_3, exps_3 = finished(run)
    assert set(evals_2) <= set(evals_3) and set(exps_2) <= set(exps_3), "every earlier finished result is kept"
    counted = [e for e in evals_3 if e[3] in (EvalStatus.SOLVED, EvalStatus.FAILED, EvalStatus.EMPTY_PATCH)]
    assert len(counted) == BUDGET, "the budget is spent exactly once across the three processes"
    assert len({(e[1], e[2]) for e in counted}) == len(counted), "no agent is evaluated twice on a task"
    with RunStore.open(run, readonly=True) as s:
        assert s.get_meta(MetaKey.FINAL_AGENT) is not None
        interrupted = [e for e in s.evaluations() if e.error_type == ErrorType.INTERRUPTED] + \
            [x for x in s.expansions() if x.error_type == ErrorType.INTERRUPTED]
        assert interrupted, "the SIGKILL cut work in flight; it is marked interrupted and redone"
        assert all(n.commit for n in s.nodes())
    log = (run / "run.log").read_text()
    assert log.count("resuming run") == 2 and "final agent: node" in log
    assert "were in flight when the run stopped: marked interrupted, redone" in log
