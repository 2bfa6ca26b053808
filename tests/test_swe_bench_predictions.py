"""`hgm export RUN NODE --predictions FILE`: an agent's SWE-bench patches from a real run, as the
official predictions JSONL, graded independently by `swebench.harness.run_evaluation` on the local
instances; the official verdicts agree with the run's stored ones.

The run: the seed agent with a scripted LLM on the four local instances (bwrap), which solves
parse-1.22.3, edits cachetools-7.3.1 without fixing it, and gives up on the other two.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from swebench_official import run_official, verdicts, write_dataset
from test_swe_bench_e2e import cli, solve_script
from test_swe_bench_scoring import BASE_IMAGE, LOCAL, TASK, bench  # noqa: F401 - fixtures

from hgm.domain import EvalStatus
from hgm.store import RunStore

from llm_scripts import write_scripts

pytestmark = [pytest.mark.slow, pytest.mark.docker]
OFFICIAL = {EvalStatus.SOLVED: "resolved", EvalStatus.FAILED: "unresolved", EvalStatus.EMPTY_PATCH: "empty_patch"}


def script(path: Path) -> str:
    """solve_script's, plus a rule that makes a change on cachetools-7.3.1 that fixes nothing."""
    solve_script(path)
    steps = json.loads(path.read_text())
    wrong = {"match": "Copies of a cache share state", "content": "Adding a note.", "tool_calls": [
        {"name": "bash", "arguments": {"command": "echo '# a note, not a fix' >> src/cachetools/__init__.py"}}]}
    steps["rules"] = [wrong, {**steps["rules"][0], "match": "Several datetime parsing bugs|Modifying a cache while"}]
    path.write_text(json.dumps(steps))
    return f"scripted:{path}"


def test_exported_predictions_graded_by_the_official_harness_agree_with_the_store(bench, tmp_path,  # noqa: F811
                                                                                    polyglot_path):
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    done = cli("run", "--swe-bench", "--dataset", str(LOCAL), "--subset", "all", "--sandbox", "bwrap",
               "--downstream-llm", script(tmp_path / "solve.json"), "--self-improve-llm", models["self_improve"],
               "--diagnose-llm", models["diagnose"], "--max-task-evals", "4", "--initial-evals", "4", "--workers", "2",
               "--run-dir", str(run), "--set", "search.initial_expansions=0", "--set", "sandbox.agent_timeout_s=300",
               "--set", f"benchmark.build_base={BASE_IMAGE}", timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    with RunStore.open(run, readonly=True) as store:
        stored = {e.task_id: e.status for e in store.evaluations(1)}
    assert stored == {TASK: EvalStatus.SOLVED, "tkem__cachetools-7.3.1": EvalStatus.FAILED,
                      "r1chardj0n3s__parse-1.22.4": EvalStatus.EMPTY_PATCH,
                      "tkem__cachetools-7.3.3": EvalStatus.EMPTY_PATCH}, stored

    preds = tmp_path / "preds.jsonl"
    exported = cli("export", str(run), "1", "--predictions", str(preds), timeout=120)
    assert exported.returncode == 0, exported.stderr
    assert f"node 1: 4 SWE-bench predictions written to {preds}" in " ".join(exported.stdout.split())
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [sorted(r) for r in rows] == [["instance_id", "model_name_or_path", "model_patch"]] * 4
    assert {r["model_name_or_path"] for r in rows} == {"hgm.run.node1"}
    assert {r["instance_id"] for r in rows} == set(stored)

    work = tmp_path / "official"
    dataset = write_dataset([t.instance for t in bench.tasks("all")], tmp_path / "dataset.jsonl")
    report = run_official(dataset, preds, work, "hgm-export")
    assert verdicts(report) == {iid: OFFICIAL[s] for iid, s in stored.items()}


def test_export_needs_something_to_write_and_a_swe_bench_run(tmp_path):
    bare = subprocess.run([sys.executable, "-m", "hgm.cli", "export", str(tmp_path), "1"], capture_output=True,
                          text=True, check=False)
    assert bare.returncode != 0 and "give DEST" in bare.stderr and "--predictions FILE" in bare.stderr
