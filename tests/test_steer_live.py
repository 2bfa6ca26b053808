"""`hgm steer` on real `hgm run` processes (scripted LLM, bwrap, the Python toolchain).

Deterministic by construction: a run is steered while it is stopped, or while it holds (paused, or
waiting for an approval) so that nothing races the steering. Each test SIGKILLs a process that
holds steering state, and resumes: what a person did is in the store, so it survives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hgm.domain import COUNTED, ExpansionStatus
from hgm.steering import Action
from hgm.store import RunStore

from live_runs import hgm
from llm_scripts import write_scripts

pytestmark = pytest.mark.slow
TASKS = "python__transpose,python__proverb,python__beer-song"


def run_args(run: Path, models: dict[str, str], polyglot: Path, budget: int, *extra: str) -> list[str]:
    return ["run", "--tasks", TASKS, "--from", str(polyglot), "--sandbox", "bwrap", "--seed", "1",
            "--downstream-llm", models["downstream"], "--self-improve-llm", models["self_improve"],
            "--diagnose-llm", models["diagnose"], "--max-task-evals", str(budget), "--initial-evals", "2",
            "--run-dir", str(run), "--set", "search.initial_expansions=1", "--set", "sandbox.agent_timeout_s=240",
            *extra]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hgm.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "COLUMNS": "300"})


def steer(run: Path, *args: str, who: bool = True) -> str:
    done = hgm("steer", str(run), *args, *(["--who", "tester"] if who else []), timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_log(run: Path, proc: subprocess.Popen, text: str, timeout: float = 600) -> None:
    """Until run.log says `text` (the process must stay alive)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        log = run / "run.log"
        if log.is_file() and text in log.read_text():
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.3)
    raise AssertionError(f"run.log never said {text!r}")


def rows(run: Path) -> tuple[list, list, list]:
    with RunStore.open(run, readonly=True) as s:
        return s.evaluations(), s.expansions(), s.interventions()


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def test_veto_pause_budget_and_note_survive_sigkill_and_resume(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    done = hgm(*run_args(run, models, polyglot_path, 3))
    assert done.returncode == 0, done.stderr[-3000:]
    evals_1, exps_1, _ = rows(run)
    assert [x.child_id for x in exps_1 if x.status == ExpansionStatus.COMMITTED] == [2]

    assert "recorded" in steer(run, "veto", "2", "--why", "this lineage edits prompts only")
    steer(run, "budget", "+3")
    steer(run, "note", "more budget for the root's lineage")
    steer(run, "pause")
    bad = hgm("steer", str(run), "veto", "99")
    assert bad.returncode == 2 and "has no node 99" in bad.stderr

    proc = start("run", "--resume", str(run))  # paused: holds, starts nothing, does not exit
    wait_log(run, proc, "paused by a person")
    time.sleep(3)
    assert proc.poll() is None, "a paused run waits"
    evals_2, exps_2, _ = rows(run)
    assert len(evals_2) == len(evals_1) and len(exps_2) == len(exps_1), "nothing started while paused"
    kill(proc)

    steer(run, "resume")
    done = hgm("run", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    evals_3, exps_3, interventions = rows(run)
    counted = [e for e in evals_3 if e.status in COUNTED]
    assert len(counted) == 6, "budget +3 gave three more task evaluations"
    assert not [e for e in evals_3[len(evals_1):] if e.node_id == 2], "the vetoed node was never evaluated again"
    assert not [x for x in exps_3 if x.parent_id == 2], "nor rewritten"
    assert [(i.action, i.who) for i in interventions] == [
        (Action.VETO, "tester"), (Action.BUDGET, "tester"), (Action.NOTE, "tester"), (Action.PAUSE, "tester"),
        (Action.RESUME, "tester")]
    assert interventions[0].why == "this lineage edits prompts only"
    log = (run / "run.log").read_text()
    assert "steering: veto node 2" in log and "steering: budget +3 evaluations" in log
    history = steer(run, "history", who=False)
    assert "note: more budget for the root's lineage" in history and "tester" in history
    report = hgm("report", str(run), "-o", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "report.html").read_text()
    timeline = html.split("<section id='steering'>")[1].split("</section>")[0]
    assert timeline.index("veto node 2") < timeline.index("budget +3") < timeline.index("resume")
    assert "6 of 6" in html, "the report counts the added budget"
    shown = hgm("show-tree", str(run), "--format", "text").stdout
    assert "[vetoed]" in shown.splitlines()[1]


def test_pin_and_hint_survive_sigkill_and_steer_the_next_rewrite(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    done = hgm(*run_args(run, models, polyglot_path, 3))
    assert done.returncode == 0, done.stderr[-3000:]
    _, exps_1, _ = rows(run)
    steer(run, "pause")
    steer(run, "pin", "2", "--count", "1", "--why", "try the child's line")
    steer(run, "hint", "2", "Look at how the agent reads the test output.")
    steer(run, "budget", "+3")
    proc = start("run", "--resume", str(run))
    wait_log(run, proc, "paused by a person")
    kill(proc)
    steer(run, "resume")
    done = hgm("run", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    _, exps, interventions = rows(run)
    later = [x for x in exps if x.id > max(x.id for x in exps_1) and x.status != ExpansionStatus.INFRA_ERROR]
    assert later and later[0].parent_id == 2, "the pinned node was the next rewrite's parent"
    diagnosis = (run / later[0].log_dir / "diagnose.md").read_text()
    assert "Hints from the researcher" in diagnosis and "Look at how the agent reads the test output." in diagnosis
    for x in later[1:]:  # the hint was for that one rewrite; the pin for one
        assert "Look at how the agent reads" not in (run / x.log_dir / "diagnose.md").read_text()
    assert [i.action for i in interventions] == [Action.PAUSE, Action.PIN, Action.HINT, Action.BUDGET, Action.RESUME]
    assert interventions[1].payload["count"] == 1 and interventions[1].why == "try the child's line"


def test_approval_gate_reject_then_approve_across_a_sigkill(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    proc = start(*run_args(run, models, polyglot_path, 6, "--approve", "rewrites"))
    wait_log(run, proc, "approves or rejects node(s) 2:")  # the root saw every task; only the child is left
    evals, _, _ = rows(run)
    assert not [e for e in evals if e.node_id == 2], "a pending child is never evaluated"
    shown = steer(run, "pending", who=False)
    assert (
        "node 2" in shown and "root_cause: Its prompt does not insist" in shown and "+# lesson: run the tests" in shown
    )
    tree = hgm("show-tree", str(run), "--format", "text").stdout
    assert "[pending approval]" in tree
    listed = hgm("runs", str(run)).stdout
    assert "running (1 pending approval)" in listed, listed
    kill(proc)

    steer(run, "reject", "2", "--why", "edits a comment only")
    bad = hgm("steer", str(run), "approve", "2")
    assert bad.returncode == 2 and "not waiting for a decision" in bad.stderr
    proc = start("run", "--resume", str(run))  # the root is rewritten again; that child waits too
    wait_log(run, proc, "approves or rejects node(s) 3:")
    evals, _, _ = rows(run)
    assert not [e for e in evals if e.node_id in (2, 3)]
    steer(run, "approve", "3", "--why", "looks fine")  # while the run holds: the scheduler acts on it
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    evals, _, interventions = rows(run)
    approved_at = next(i.created_at for i in interventions if i.action == Action.APPROVE)
    mine = [e for e in evals if e.node_id == 3 and e.status in COUNTED]
    assert len(mine) == 3 and all(e.started_at >= approved_at for e in mine), "evaluated only once approved"
    assert not [e for e in evals if e.node_id == 2], "the rejected child never was"
    assert [(i.action, i.node_id, i.why) for i in interventions] == [
        (Action.REJECT, 2, "edits a comment only"), (Action.APPROVE, 3, "looks fine")]
    tree = hgm("show-tree", str(run), "--format", "text").stdout
    assert "rejected" in tree


def test_an_agents_file_request_is_granted_by_a_person_and_mounted_into_later_rewrites(
        tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    guide = tmp_path / "style-guide.txt"
    guide.write_text("STYLE-GUIDE-MARKER: always run the tests\n")
    ask = ("printf '[{\"kind\": \"file\", \"what\": \"the team style guide\", \"why\": \"to follow it\"}, "
           "{\"kind\": \"package\", \"what\": \"numpy\", \"why\": \"faster arrays\"}]' > \"$HGM_REQUESTS_FILE\"; "
           "printf '\\n# lesson: run the tests (%s)\\n' \"$(date +%s%N)\" >> prompts.py")
    use = f"printf '\\n# %s\\n' \"$(cat {guide})\" >> prompts.py"
    self_improve = tmp_path / "scripts" / "self_improve_requests.json"
    self_improve.write_text(json.dumps({"rules": [
        {"match": "granted by tester", "content": "Using the granted file.",
         "tool_calls": [{"name": "bash", "arguments": {"command": use}}]},
        {"match": "Improve this coding agent", "content": "Asking for what I need.",
         "tool_calls": [{"name": "bash", "arguments": {"command": ask}}]}],
        "responses": [{"content": "Done."}]}))
    models["self_improve"] = f"scripted:{self_improve}"
    run = tmp_path / "run"
    done = hgm(*run_args(run, models, polyglot_path, 3))
    assert done.returncode == 0, done.stderr[-3000:]
    listed = steer(run, "requests", who=False)
    assert "#1  file  the team style guide" in listed and "#2  package  numpy" in listed and "[open]" in listed
    _, exps_1, _ = rows(run)
    first = run / exps_1[0].log_dir
    assert "HGM_REQUESTS_FILE" in (first / "agent" / "statement.md").read_text()
    assert "STYLE-GUIDE-MARKER" not in (first / "patch.diff").read_text(), "nothing is granted without a person"

    steer(run, "pause")
    bad = hgm("steer", str(run), "grant", "1")
    assert bad.returncode == 2 and "--path FILE" in bad.stderr
    steer(run, "grant", "1", "--path", str(guide))
    steer(run, "decline", "2", "--why", "use the standard library")
    steer(run, "budget", "+3")
    proc = start("run", "--resume", str(run))
    wait_log(run, proc, "paused by a person")
    kill(proc)
    steer(run, "resume")
    done = hgm("run", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    _, exps, _ = rows(run)
    later = [x for x in exps if x.id > exps_1[-1].id and x.status == ExpansionStatus.COMMITTED]
    assert later, "a rewrite after the grant"
    statement = (run / later[0].log_dir / "agent" / "statement.md").read_text()
    assert f"granted by tester (read-only at {guide})" in statement
    assert "declined by tester: use the standard library" in statement
    assert "STYLE-GUIDE-MARKER: always run the tests" in (run / later[0].log_dir / "patch.diff").read_text(), \
        "the granted file was mounted read-only into the rewrite's sandbox"
    listed = steer(run, "requests", who=False)
    assert "[granted by tester]" in listed and "[declined by tester: use the standard library]" in listed
