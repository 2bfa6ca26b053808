"""Fractional scores (a target's score s in [0, 1]): n_s += s, n_f += 1 - s everywhere the counters
are kept or read — the search's tree, the store, resume, show-tree, the report, compare, simulate."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from hgm.config import load_config
from hgm.domain import EvalOutcome, EvalStatus, success
from hgm.memory_store import MemoryStore
from hgm.policies import Tree
from hgm.report.compare import summarize
from hgm.report.data import load_run
from hgm.show_tree import load, render_json, render_text, tree_stats
from hgm.simulate import World, run_in_dir, simulate_once
from hgm.store import RunStore


def test_a_score_splits_between_the_success_and_failure_counters() -> None:
    t = Tree(n_tasks=5)
    t.add_agent(1, None, "r")
    t.add_agent(2, 1, "c")
    t.record(1, 0.7)
    t.record(2, 0.25)
    t.record(2, True)  # solved and failed are 1 and 0
    root, child = t.agents[1], t.agents[2]
    assert (root.own_successes, root.own_failures, root.evals) == pytest.approx((0.7, 0.3, 1))
    assert (child.own_successes, child.own_failures, child.evals) == pytest.approx((1.25, 0.75, 2))
    assert (root.clade_successes, root.clade_failures) == pytest.approx((1.95, 1.05))
    assert success(EvalStatus.SOLVED, None) == 1.0 and success(EvalStatus.EMPTY_PATCH, None) == 0.0
    assert success(EvalStatus.SCORED, 0.4) == 0.4 and success(EvalStatus.INFRA_ERROR, None) is None


def _scored_run(tmp_path: Path) -> RunStore:
    store = RunStore.create(tmp_path / "run", load_config())
    root = store.add_node(None, "a" * 40, "target")
    for task, score in (("case-1", 0.8), ("case-2", 0.35)):
        store.finish_evaluation(store.start_evaluation(root, task), EvalOutcome(EvalStatus.SCORED, score=score))
    store.finish_evaluation(store.start_evaluation(root, "case-3"), EvalOutcome(EvalStatus.FAILED))
    return store


def test_store_show_tree_and_memory_store_keep_the_score(tmp_path: Path) -> None:
    with _scored_run(tmp_path) as store:
        assert [e.score for e in store.evaluations()] == [0.8, 0.35, None]
    stats = load(tmp_path / "run")
    assert stats[1].solved == pytest.approx(1.15) and stats[1].evaluated == 3
    assert "own 1.15/3  clade 1.15/3  CMP 0.38" in render_text(stats)
    assert json.loads(render_json(stats))[0]["clade_solved"] == pytest.approx(1.15)
    memory = MemoryStore()
    memory.add_node(None, "r")
    memory.finish_evaluation(memory.start_evaluation(1, "case-1"), EvalOutcome(EvalStatus.SCORED, score=0.6))
    assert tree_stats(memory)[1].solved == pytest.approx(0.6)


def test_a_store_from_before_the_score_column_opens_and_gets_it(tmp_path: Path) -> None:
    _scored_run(tmp_path).close()
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as db:
        db.execute("ALTER TABLE evaluations DROP COLUMN score")
    with RunStore.open(tmp_path / "run", readonly=True) as store:
        assert [e.score for e in store.evaluations()] == [None, None, None]
    with RunStore.open(tmp_path / "run") as store:
        store.finish_evaluation(store.start_evaluation(1, "case-4"), EvalOutcome(EvalStatus.SCORED, score=0.5))
        assert store.evaluations()[-1].score == 0.5


def test_a_scored_simulated_run_resumes_reports_and_compares_fractionally(tmp_path: Path) -> None:
    world = World(score_noise_sd=0.15)
    config = load_config(overrides=["search.max_task_evals=40", "search.workers=2"])
    result, utility = run_in_dir(tmp_path / "run", world, config)
    assert result.completed and 0 < utility < 1
    with RunStore.open(tmp_path / "run", readonly=True) as store:
        scores = [e.score for e in store.evaluations() if e.status == EvalStatus.SCORED]
    assert len(scores) == 40 and any(0 < s < 1 for s in scores)
    stats = load(tmp_path / "run")
    assert sum(s.solved for s in stats.values()) == pytest.approx(sum(scores))
    assert any(not float(s.solved).is_integer() for s in stats.values())
    # resume rebuilds the counters from the store: the same numbers show-tree computes
    resumed, _ = run_in_dir(tmp_path / "run", world, config)
    assert resumed.final_agent == result.final_agent
    run = load_run(tmp_path / "run")
    final = run.stats[result.final_agent]
    assert summarize(run, "hgm").score == pytest.approx(final.solved / final.evaluated)
    assert run.curves.best_success_rate[-1] == pytest.approx(run.stats[run.curves.best_agent[-1]].solved /
                                                            run.stats[run.curves.best_agent[-1]].evaluated)


def test_simulate_once_with_scores_spends_the_budget() -> None:
    metrics = simulate_once(World(score_noise_sd=0.1), load_config().search.model_copy(update={"max_task_evals": 30}),
                            seed=3)
    assert 0 < metrics.final_utility < 1 and metrics.agents >= 2
