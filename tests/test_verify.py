"""`hgm verify` and `hgm replay` on a real recorded run: scripted LLM, bwrap sandboxes, the Python toolchain."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_swe_bench_e2e import solve_script
from test_swe_bench_scoring import BASE_IMAGE, LOCAL, TASK, bench  # noqa: F401 - the fixture

from hgm.archive import Archive
from hgm.domain import EvalStatus
from hgm.paths import INITIAL_AGENT
from hgm.store import RunStore
from hgm.verify import Verdict, name_verdict

from live_runs import counted, hgm
from llm_scripts import write_scripts

TASKS = "python__transpose,python__proverb,python__beer-song"
LESSON = "printf '\\n# lesson: run the tests before you stop\\n' >> prompts.py"
"""The rewrite's command, without the clock in it: a replay must be able to reproduce the child."""


def scripted_run(run: Path, scripts: Path, polyglot: Path, *, workers: int = 1,
                 wait: bool = True) -> subprocess.Popen | None:
    """A scripted `hgm run` (6 evaluations) whose rewrites are reproducible; with wait=False, the process."""
    models = write_scripts(scripts, polyglot)
    si = scripts / "self_improve.json"
    script = json.loads(si.read_text())
    script["rules"][0]["tool_calls"][0]["arguments"]["command"] = LESSON
    si.write_text(json.dumps(script))
    args = ["run", "--tasks", TASKS, "--from", str(polyglot), "--sandbox", "bwrap",
            "--downstream-llm", models["downstream"], "--self-improve-llm", models["self_improve"],
            "--diagnose-llm", models["diagnose"], "--max-task-evals", "6", "--initial-evals", "2", "--seed", "1",
            "--run-dir", str(run), "--set", "search.initial_expansions=1", "--set", "sandbox.agent_timeout_s=240",
            "--workers", str(workers)]
    if not wait:
        return subprocess.Popen([sys.executable, "-m", "hgm.cli", *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    done = hgm(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    return None


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, polyglot_path: Path) -> Path:
    """One recorded run (6 evaluations, 2 rewrites), only read by the tests (they copy it to change it)."""
    tmp = tmp_path_factory.mktemp("recorded")
    scripted_run(tmp / "run", tmp / "scripts", polyglot_path)
    with RunStore.open(tmp / "run", readonly=True) as s:
        statuses = {e.status for e in s.evaluations()}
    assert EvalStatus.SOLVED in statuses and EvalStatus.EMPTY_PATCH in statuses, statuses
    return tmp / "run"


def verify_json(run: Path, *args: str) -> tuple[int, dict]:
    done = hgm("verify", str(run), "--format", "json", *args)
    assert done.returncode in (0, 1, 3), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


@pytest.mark.slow
def test_verify_of_a_recorded_run_finds_no_mismatch(recorded: Path) -> None:
    before = snapshot(recorded)
    code, report = verify_json(recorded, "--workers", "2")
    assert code == 0, report
    assert snapshot(recorded) == before
    assert report["regraded"] == report["counted"] == 6
    assert report["by_verdict"] == {"agrees": 6} and report["mismatches"] == 0
    assert [c["name"] for c in report["checks"] if not c["ok"]] == []
    assert {c["name"]: c["checked"] for c in report["checks"]}["children's diffs"] == 2
    text = hgm("verify", str(recorded), "--sample", "2", "--seed", "7")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "re-graded a sample of 2 of 6 counted evaluations (seed 7" in text.stdout
    assert "verified: every re-grade agrees and every check holds" in text.stdout


@pytest.mark.slow
def test_verify_names_edited_verdicts_and_a_deleted_commit(recorded: Path, tmp_path: Path) -> None:
    run = tmp_path / "edited"
    shutil.copytree(recorded, run, symlinks=True)
    with sqlite3.connect(run / "run.sqlite") as db:
        solved = db.execute("SELECT min(id) FROM evaluations WHERE status='solved'").fetchone()[0]
        empty = db.execute("SELECT min(id) FROM evaluations WHERE status='empty_patch'").fetchone()[0]
        db.execute("UPDATE evaluations SET status='failed' WHERE id=?", (solved,))
        db.execute("UPDATE evaluations SET status='solved' WHERE id=?", (empty,))
        child = db.execute("SELECT id, commit_sha FROM nodes WHERE parent_id IS NOT NULL ORDER BY id DESC").fetchone()
    code, report = verify_json(run)
    assert code == 1
    named = {r["eval_id"]: r for r in report["regrades"] if r["verdict"] != "agrees"}
    assert set(named) == {solved, empty}, named
    assert named[solved]["verdict"] == "tampered" and named[solved]["stored"] == "failed"
    assert named[solved]["regraded"] == ["solved", "solved"]
    assert named[empty]["verdict"] == "tampered" and named[empty]["regraded"] == ["empty_patch", "empty_patch"]
    assert [c["name"] for c in report["checks"] if not c["ok"]] == []  # the rows are consistent, only wrong

    node, sha = child
    (run / "archive" / "objects" / sha[:2] / sha[2:]).unlink()  # loose: the archive never packs (gc.auto 0)
    code, report = verify_json(run, "--sample", "1", "--seed", "1")
    assert code == 1
    failed = {c["name"]: c["failures"] for c in report["checks"] if not c["ok"]}
    assert list(failed) == ["commits in the archive"]
    assert failed["commits in the archive"] == [f"node {node}: commit {sha} is not in the archive"]


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of a run directory (the WAL and shared-memory files of a reader aside), with its bytes."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def replay_json(run: Path, out: Path, *args: str) -> tuple[int, dict]:
    done = hgm("replay", str(run), "-o", str(out), "--format", "json", *args)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


@pytest.mark.slow
def test_replay_of_a_recorded_run_reproduces_every_outcome(recorded: Path, tmp_path: Path) -> None:
    out = tmp_path / "replay"
    before = snapshot(recorded)
    code, report = replay_json(recorded, out)
    assert (code, report["divergences"]) == (0, []), json.dumps(report["divergences"], indent=1)
    assert snapshot(recorded) == before  # the record is only read
    with RunStore.open(recorded, readonly=True) as rec, RunStore.open(out, readonly=True) as rep:
        assert [(e.node_id, e.task_id, e.status, e.detail) for e in rep.evaluations()] == \
            [(e.node_id, e.task_id, e.status, e.detail) for e in rec.evaluations()]
        assert [(x.parent_id, x.child_id, x.status, x.entry_task) for x in rep.expansions()] == \
            [(x.parent_id, x.child_id, x.status, x.entry_task) for x in rec.expansions()]
        assert report["replayed"] == len(rec.evaluations()) + len(rec.expansions()) == 8
        served = [c for c in rec.llm.exchanges() if c.attempts > 0]
        assert report["llm_calls"] == len(served) == len(rep.llm.exchanges())
        assert rep.get_meta("final_agent") == rec.get_meta("final_agent")
        nodes = [n.id for n in rec.nodes()]
    rec_git, rep_git = Archive.open(recorded / "archive").repo.git, Archive.open(out / "archive").repo.git
    for node in nodes:  # commit ids differ (a commit holds its time); the code is the same
        assert rep_git.rev_parse(f"node-{node}^{{tree}}") == rec_git.rev_parse(f"node-{node}^{{tree}}")
    for n in nodes[1:]:
        assert "+# lesson: run the tests before you stop" in rep_git.diff(f"node-{n}~1", f"node-{n}")
    code, checked = verify_json(out)  # a replay is an ordinary run
    assert code == 0 and checked["by_verdict"] == {"agrees": 6}, checked


@pytest.mark.slow
def test_replay_with_a_changed_agent_names_the_first_divergent_request(recorded: Path, tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    shutil.copytree(INITIAL_AGENT, agent, ignore=shutil.ignore_patterns("__pycache__"))
    prompts = agent / "prompts.py"
    prompts.write_text(prompts.read_text().replace("Work step by step:", "Work carefully, step by step:", 1))
    code, report = replay_json(recorded, tmp_path / "replay", "--agent", str(agent))
    assert code == 1
    divergences = report["divergences"]
    assert divergences[0] == {"kind": "root", "where": "the root agent",
                              "what": "its code differs from the recorded root agent's in 1 files: prompts.py"}
    with RunStore.open(recorded, readonly=True) as rec:
        first = rec.llm.exchanges()[0]
        evaluation = rec.evaluations()[0]
    llm = [d for d in divergences if d["kind"] == "llm"]
    assert llm[0]["where"] == (f"call {first.id} (request 1 of session {first.session}, downstream, node "
                               f"{evaluation.node_id} on {evaluation.task_id})")
    assert llm[0]["what"].startswith("the request differs: request.messages[0].content at character ")
    assert "Work carefully, step by step" in llm[0]["what"] and "'Work step by step" not in llm[0]["what"]
    children = [d for d in divergences if d["kind"] == "expansion"]
    assert children and all("differ: diff at character" in d["what"] for d in children), children


def test_a_disagreeing_verdict_is_named_by_its_second_re_grade() -> None:
    assert name_verdict("solved", ["solved"]) == Verdict.AGREES
    assert name_verdict("solved", ["failed", "solved"]) == Verdict.FLAKY  # the second re-grade agrees with the store
    assert name_verdict("solved", ["failed", "empty_patch"]) == Verdict.FLAKY  # it flips
    assert name_verdict("solved", ["failed", "failed"]) == Verdict.TAMPERED
    assert name_verdict("failed", ["failed+flagged", "failed+flagged"]) == Verdict.TAMPERED  # a flag the store lacks


@pytest.mark.slow
def test_a_killed_and_resumed_run_of_two_workers_verifies_and_replays(tmp_path: Path, polyglot_path: Path) -> None:
    run = tmp_path / "run"
    proc = scripted_run(run, tmp_path / "scripts", polyglot_path, workers=2, wait=False)
    try:
        end = time.monotonic() + 300
        while counted(run) < 3:  # then kill it, whatever is in flight
            assert proc.poll() is None and time.monotonic() < end, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = hgm("run", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    code, checked = verify_json(run)
    assert code == 0 and checked["mismatches"] == 0 and checked["regraded"] == 6, checked
    out = tmp_path / "replay"
    code, report = replay_json(run, out)
    assert (code, report["divergences"]) == (0, []), json.dumps(report["divergences"], indent=1)
    with RunStore.open(run, readonly=True) as rec, RunStore.open(out, readonly=True) as rep:
        assert [(e.node_id, e.task_id, e.status, e.error_type) for e in rep.evaluations()] == \
            [(e.node_id, e.task_id, e.status, e.error_type) for e in rec.evaluations()]
        assert [(x.parent_id, x.child_id, x.status, x.error_type) for x in rep.expansions()] == \
            [(x.parent_id, x.child_id, x.status, x.error_type) for x in rec.expansions()]
        served = sum(c.attempts > 0 for c in rep.llm.exchanges())
        assert 0 < report["llm_calls"] == served <= sum(c.attempts > 0 for c in rec.llm.exchanges())
    code, checked = verify_json(out)
    assert code == 0, checked


@pytest.mark.slow
@pytest.mark.docker
def test_a_swe_bench_run_verifies_and_replays_through_the_same_interface(bench, tmp_path: Path,  # noqa: F811
                                                                         polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    done = hgm("run", "--swe-bench", "--dataset", str(LOCAL), "--subset", "all", "--sandbox", "bwrap",
               "--downstream-llm", solve_script(tmp_path / "solve.json"), "--self-improve-llm", models["self_improve"],
               "--diagnose-llm", models["diagnose"], "--max-task-evals", "3", "--initial-evals", "3",
               "--run-dir", str(run), "--set", "search.initial_expansions=0", "--set", "sandbox.agent_timeout_s=300",
               "--set", f"benchmark.build_base={BASE_IMAGE}")
    assert done.returncode == 0, done.stderr[-3000:]
    code, report = replay_json(run, tmp_path / "replay")
    assert (code, report["divergences"], report["replayed"]) == (0, [], 3), report
    with sqlite3.connect(run / "run.sqlite") as db:
        (solved,) = db.execute("SELECT id FROM evaluations WHERE status='solved' AND task_id=?", (TASK,)).fetchone()
        db.execute("UPDATE evaluations SET status='failed' WHERE id=?", (solved,))
    code, report = verify_json(run)
    assert code == 1 and report["by_verdict"] == {"agrees": 2, "tampered": 1}, report
    (named,) = [r for r in report["regrades"] if r["verdict"] == "tampered"]
    assert (named["eval_id"], named["stored"], named["regraded"]) == (solved, "failed", ["solved", "solved"])
