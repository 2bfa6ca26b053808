"""The synthetic world, `hgm simulate`, and resuming a run whose process was SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hgm.cli import app
from hgm.config import load_config
from hgm.domain import ErrorType, EvalStatus, ExpansionStatus, MetaKey
from hgm.errors import UserError
from hgm.simulate import Lineage, SimWorld, World, _decode, compare, evals_to_match, load_world, run_in_dir
from hgm.store import RunStore

COUNTED = {EvalStatus.SOLVED, EvalStatus.FAILED, EvalStatus.EMPTY_PATCH}


def test_presets_load_and_unknown_names_are_listed(tmp_path: Path) -> None:
    assert load_world("default").root_lineages == []
    deceptive = load_world("deceptive")
    quick, slow = deceptive.root_lineages
    assert quick.skill_delta > slow.skill_delta and quick.metaproductivity < 0 < slow.metaproductivity
    with pytest.raises(UserError, match="known: darwin, deceptive, default"):
        load_world("nope")
    bad = tmp_path / "w.yaml"
    bad.write_text("tasks: 10\nbogus: 1\n")
    with pytest.raises(UserError, match="bogus"):
        load_world(path=bad)
    with pytest.raises(UserError, match="not found"):
        load_world(path=tmp_path / "missing.yaml")


def test_utility_and_evaluation_follow_the_documented_model() -> None:
    sim = SimWorld(World(tasks=4, difficulty_sd=0.0, root_skill=0.8), seed=0)
    sim.commit_of = {1: sim.root_commit()}
    expected = 1 / (1 + np.exp(-0.8))  # no difficulty spread: utility = sigmoid(skill)
    assert sim.utility(sim.root_commit()) == pytest.approx(expected)
    draws = [sim.evaluate(1, "task000", i).status == EvalStatus.SOLVED for i in range(4000)]
    assert np.mean(draws) == pytest.approx(expected, abs=0.025)


def test_rewrites_inherit_metaproductivity_and_lineages() -> None:
    world = World(root_skill=0.0, step_sd=0.0, metaproductivity_sd=0.0, rewrite_fail_prob=0.0,
                  root_lineages=[Lineage(skill_delta=1.0, metaproductivity=-0.5)])
    sim = SimWorld(world, seed=0)
    sim.commit_of = {1: sim.root_commit()}
    child = sim.expand(1, 1).commit
    assert _decode(child)[:3] == (1.0, -0.5, 1)  # the lineage's immediate change and metaproductivity
    sim.commit_of[2] = child
    assert _decode(sim.expand(2, 2).commit)[:3] == (0.5, -0.5, 2)  # skill moves by the parent's m
    failing = SimWorld(world.model_copy(update={"rewrite_fail_prob": 1.0}), seed=0)
    failing.commit_of = sim.commit_of
    assert failing.expand(1, 3).status == ExpansionStatus.FAILED


def test_compare_runs_every_policy_with_the_same_search_code() -> None:
    search = load_config(overrides=["search.max_task_evals=60"]).search
    rows = compare(load_world("deceptive"), search, ["hgm", "greedy"], seeds=3)
    assert [r["policy"] for r in rows] == ["hgm", "greedy"]
    for r in rows:
        assert len(r["runs"]) == 3 and 0 < r["final_utility_mean"] <= r["best_utility_mean"] < 1
    with pytest.raises(UserError, match="known: hgm, dgm, greedy, random, dgm-paper, sica, best-of-n"):
        compare(load_world(), search, ["hgm", "bogus"], seeds=1)


def test_cli_table_and_json() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["simulate", "--seeds", "2", "--max-task-evals", "40", "--policies", "hgm,dgm"],
                        env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "hgm" in out.output and "dgm" in out.output and "best in tree" in out.output
    assert "task evaluations hgm needs to reach each policy's final utility at 40" in out.output
    out = runner.invoke(
        app, ["simulate", "--seeds", "2", "--max-task-evals", "40", "--format", "json", "--preset", "deceptive"]
    )
    rows = json.loads(out.stdout)
    assert [r["policy"] for r in rows] == ["hgm", "dgm-paper", "sica", "best-of-n", "dgm", "greedy", "random"]
    assert rows[0]["budget"] == 40 and rows[0]["evals_to_match"] is None
    assert [r["evals_to_match"]["baseline"] for r in rows[1:]] == [r["policy"] for r in rows[1:]]


def test_evals_to_match_by_hand() -> None:
    # Seed 0: hgm's named agent is worth 0.2 after 1 evaluation, 0.5 after 3; seed 1: 0.4 after 2. The
    # baseline ends at 0.5 (seed 0: reached at 3) and 0.6 (seed 1: never, counted as > budget).
    def curve(evals: list[int], utility: list[float]) -> dict:
        return {"curve": {"evals": evals, "true_utility": utility}}

    hgm = {"policy": "hgm", "final_utility_mean": 0.45, "budget": 4,
           "runs": [curve([0, 1, 2, 3], [0.1, 0.2, 0.2, 0.5]), curve([0, 1, 2], [0.1, 0.1, 0.4])]}
    base = {"policy": "dgm-paper", "final_utility_mean": 0.55, "budget": 4,
            "runs": [{"final_utility": 0.5}, {"final_utility": 0.6}]}
    [m] = evals_to_match([hgm, base])
    assert m["evals_needed_median"] == float("inf") and m["reached"] == 0.5  # median of [3, inf]
    assert m["evals_needed_mean_where_reached"] == 3.0 and m["evals_needed_ci95"] == [3.0, float("inf")]
    base["runs"][1]["final_utility"] = 0.1  # seed 1: hgm's first named agent (after 1 evaluation) reaches it
    [m] = evals_to_match([hgm, base])
    assert m["evals_needed_median"] == 2.0 and m["reached"] == 1.0


def test_simulated_run_in_a_directory_with_infra_errors(tmp_path: Path) -> None:
    world = World(infra_error_prob=0.1)
    config = load_config(overrides=["search.max_task_evals=80", "search.workers=3"])
    result, utility = run_in_dir(tmp_path / "run", world, config)
    assert result.completed and result.evals_done == 80 and 0 < utility < 1
    with RunStore.open(tmp_path / "run", readonly=True) as store:
        evals = store.evaluations()
        assert sum(e.status in COUNTED for e in evals) == 80
        infra = [e for e in evals if e.status == EvalStatus.INFRA_ERROR]
        assert infra and all(e.error_type == "RuntimeError" for e in infra)


def _finished(store: RunStore) -> dict[int, tuple[int, str, EvalStatus]]:
    return {e.id: (e.node_id, e.task_id, e.status) for e in store.evaluations() if e.status in COUNTED}


def test_sigkilled_run_resumes_without_losing_finished_work(tmp_path: Path) -> None:
    run = tmp_path / "run"
    budget = 150
    proc = subprocess.Popen(
        [sys.executable, "-m", "hgm.cli", "simulate", "--run-dir", str(run), "--max-task-evals", str(budget),
         "--delay", "0.2", "--set", "search.workers=3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen: dict[int, tuple[int, str, EvalStatus]] = {}
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            if (run / "run.sqlite").exists():
                try:
                    with RunStore.open(run, readonly=True) as ro:
                        seen = _finished(ro)
                        in_flight = [e for e in ro.evaluations() if e.status == EvalStatus.IN_FLIGHT]
                except UserError:  # the file exists but the schema is not written yet
                    continue
                if len(seen) >= 8 and in_flight:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the simulated run never got going")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    with RunStore.open(run) as store:  # writable open resets the in-flight work
        after = _finished(store)
        assert all(after[i] == row for i, row in seen.items())  # nothing finished was lost
        evals = store.evaluations()
        assert not [e for e in evals if e.status == EvalStatus.IN_FLIGHT]
        assert [e for e in evals if e.error_type == ErrorType.INTERRUPTED]
        assert len(after) < budget
    result, _ = run_in_dir(run, World(), load_config())  # resumes with the stored world and config
    assert result.completed and result.evals_done == budget
    with RunStore.open(run, readonly=True) as store:
        final = _finished(store)
        assert len(final) == budget
        assert len({(n, t) for n, t, _ in final.values()}) == budget  # no pair evaluated twice
        assert all(final[i] == row for i, row in after.items())
        assert store.get_meta(MetaKey.FINAL_AGENT) == str(result.final_agent)


def test_run_dir_of_a_real_run_is_refused(tmp_path: Path) -> None:
    RunStore.create(tmp_path / "run", load_config()).close()
    with pytest.raises(UserError, match="not a simulated one"):
        run_in_dir(tmp_path / "run", World(), load_config())
