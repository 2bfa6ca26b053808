"""`hgm run` end to end with the scripted LLM, real bwrap sandboxes and the Python toolchain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hgm.archive import Archive
from hgm.domain import EvalStatus, ExpansionStatus, MetaKey
from hgm.store import RunStore

from llm_scripts import write_scripts

TASKS = "python__transpose,python__proverb,python__beer-song"


def hgm(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**(os.environ if env is None else env), "COLUMNS": "300"}  # no wrapping inside paths
    return subprocess.run([sys.executable, "-m", "hgm.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def run_args(run: Path, models: dict[str, str], polyglot: Path, budget: int) -> list[str]:
    return ["run", "--tasks", TASKS, "--from", str(polyglot), "--sandbox", "bwrap",
            "--downstream-llm", models["downstream"], "--self-improve-llm", models["self_improve"],
            "--diagnose-llm", models["diagnose"], "--max-task-evals", str(budget), "--initial-evals", "2",
            "--seed", "1", "--run-dir", str(run), "--set", "search.initial_expansions=1",
            "--set", "sandbox.agent_timeout_s=240"]


@pytest.mark.slow
def test_run_grows_a_tree_and_show_tree_reports_it(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    done = hgm(*run_args(run, models, polyglot_path, budget=6))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final agent: node" in done.stderr and f"hgm export {run}" in done.stderr

    store = RunStore.open(run, readonly=True)
    nodes = store.nodes()
    evals = [e for e in store.evaluations() if e.status != EvalStatus.INFRA_ERROR]
    assert len(nodes) >= 2 and len(evals) == 6
    root = nodes[0]
    assert {e.node_id for e in evals} >= {root.id, nodes[1].id}, "parent and child were both evaluated"
    solved_transpose = [e for e in evals if e.task_id == "python__transpose"]
    assert all(e.status == EvalStatus.SOLVED for e in solved_transpose)
    assert all(e.status == EvalStatus.EMPTY_PATCH for e in evals if e.task_id != "python__transpose")
    committed = [x for x in store.expansions() if x.status == ExpansionStatus.COMMITTED]
    assert committed and committed[0].entry_task in TASKS.split(",")

    archive = Archive.open(run / "archive")
    child = nodes[1]
    assert archive.resolve(f"node-{child.id}") == child.commit
    assert archive.parent_of(child.commit) == root.commit
    assert archive.message(child.commit).startswith("Run the tests before stopping")
    assert "+# lesson: run the tests before you stop" in archive.diff(root.commit, child.commit)
    exp_dir = run / committed[0].log_dir
    assert (exp_dir / "diagnosis.json").is_file() and "own tests: exit 0" in (exp_dir / "validation.txt").read_text()
    assert (run / "run.log").read_text().count("final agent: node") == 1
    for role in ("downstream", "diagnose", "self_improve"):
        assert store.llm.usage(role=role).calls > 0, role
    assert store.llm.usage(role="diagnose").cost_usd == pytest.approx(len(store.expansions()) * (3000 + 400) / 1e6)

    shown = json.loads(hgm("show-tree", str(run), "--format", "json").stdout)
    for row in shown:
        own = [e for e in evals if e.node_id == row["id"]]
        assert row["evaluated"] == len(own)
        assert row["solved"] == sum(e.status == EvalStatus.SOLVED for e in own)
    assert shown[0]["clade_evaluated"] == 6
    assert shown[0]["clade_solved"] == len(solved_transpose)
    final = int(store.get_meta(MetaKey.FINAL_AGENT))
    assert [r["id"] for r in shown if r["final"]] == [final]
    text = hgm("show-tree", str(run), "--format", "text").stdout
    for row in shown:  # the printed tree says the same as the store
        assert (f"node {row['id']}  {row['commit'][:7]}  own {row['solved']}/{row['evaluated']}  clade "
                f"{row['clade_solved']}/{row['clade_evaluated']}  ") in text
    assert text.count("<- FINAL") == 1 and f"node {final} " in [ln.strip()[:len(f'node {final} ')]
                                                                  for ln in text.splitlines() if "<- FINAL" in ln]
    assert hgm("show-tree", str(run)).returncode == 0

    out = tmp_path / "exported"
    done = hgm("export", str(run), str(child.id), str(out))
    assert done.returncode == 0, done.stderr
    assert "# lesson: run the tests" in (out / "prompts.py").read_text()


@pytest.mark.slow
def test_cost_cap_stops_new_work_and_still_names_the_final_agent(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    done = hgm(*run_args(run, models, polyglot_path, budget=6), "--max-usd", "0.001")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped early: cost cap $0.001 reached" in done.stderr
    store = RunStore.open(run, readonly=True)
    assert len([e for e in store.evaluations() if e.status != EvalStatus.INFRA_ERROR]) == 2, "only the initial evals"
    [expansion] = store.expansions()
    # the diagnosis could cost more than the whole cap (its prompt and the most output it may get, at
    # the script's price), so the gateway refused it before sending it: nothing was spent on it, and
    # the rewrite is booked as an infra stop, not as a failure of the parent
    assert expansion.status == ExpansionStatus.INFRA_ERROR and "cost cap $0.001 reached" in expansion.reason, expansion
    diagnose = store.llm.usage(role="diagnose")
    assert (diagnose.calls, diagnose.cost_usd) == (1, 0.0)
    assert store.get_meta(MetaKey.FINAL_AGENT) == str(store.nodes()[0].id)
    store.close()
    done = hgm("run", "--resume", str(run))
    assert done.returncode == 2 and "nothing left to resume" in done.stderr


@pytest.mark.slow
def test_llm_down_is_infra_errors_then_a_clear_stop_that_can_resume(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    down = tmp_path / "scripts" / "down.json"
    down.write_text(json.dumps([{"fault": 500, "repeat": 1000}]))
    models["downstream"] = f"scripted:{down}"
    run = tmp_path / "run"
    done = hgm(*run_args(run, models, polyglot_path, budget=4), "--set", "llm.max_retries=0",
               "--set", "search.max_consecutive_infra_errors=2")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "2 infra errors in a row" in done.stderr and f"hgm run --resume {run}" in done.stderr
    lines = [line for line in done.stderr.splitlines() if "infra_error (" in line]
    assert len(lines) == 2 and all("infra_error (UpstreamFailed: upstream failed after 1 attempts: " in line
                                   for line in lines), "each line says why, not only the final error"
    assert "Traceback" not in done.stderr
    store = RunStore.open(run, readonly=True)
    evals = store.evaluations()
    assert len(evals) == 2 and all(e.status == EvalStatus.INFRA_ERROR for e in evals), "never the agent's failure"
    assert all(e.error_type == "UpstreamFailed" for e in evals)
