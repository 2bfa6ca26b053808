"""Spend on rewrites is bounded: a run whose diagnose model never answers a plan ends by itself,
non-zero, saying why (real `hgm run`, scripted LLM, bwrap)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_run_e2e import hgm

from hgm.domain import ExpansionStatus
from hgm.store import RunStore

from llm_scripts import write_scripts

TASKS = "python__transpose,python__proverb,python__beer-song"
pytestmark = pytest.mark.slow


def args(run: Path, models: dict[str, str], polyglot: Path, *extra: str) -> list[str]:
    return ["run", "--tasks", TASKS, "--from", str(polyglot), "--sandbox", "bwrap", "--workers", "2",
            "--downstream-llm", models["downstream"], "--self-improve-llm", models["self_improve"],
            "--diagnose-llm", models["diagnose"], "--max-task-evals", "50", "--run-dir", str(run), *extra]


def test_rewrites_that_never_get_a_plan_end_the_run(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path, diagnose="malformed")
    run = tmp_path / "run"
    # the root is evaluated on every task first: afterwards only rewrites could go on
    done = hgm(*args(run, models, polyglot_path, "--initial-evals", "3"))
    assert done.returncode == 2, done.stderr[-3000:]
    err = " ".join(done.stderr.split())
    assert "the run ended early: nothing is left to try after 3 of 50 task evaluations" in err
    assert "last 3 rewrites failed" in err and "diagnosis failed: malformed answer" in err
    assert "Traceback" not in done.stderr
    with RunStore.open(run, readonly=True) as store:
        # 3 failed rewrites block the root; with 2 workers a 4th may have been under way by then
        expansions = store.expansions()
        assert 3 <= len(expansions) <= 4 and {x.status for x in expansions} == {ExpansionStatus.FAILED}
        assert store.llm.usage(role="diagnose").calls == 2 * len(expansions)  # one retry each, then no more calls


def test_k_failed_rewrites_in_a_row_stop_the_run_and_say_how_to_resume(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path, diagnose="malformed")
    run = tmp_path / "run"
    done = hgm(
        *args(
            run,
            models,
            polyglot_path,
            "--initial-evals",
            "1",
            "--set",
            "search.initial_expansions=1",
            "--set",
            "search.max_consecutive_failed_rewrites=4",
            "--set",
            "search.max_failed_rewrites_per_parent=50",
        )
    )
    assert done.returncode == 2, done.stderr[-3000:]
    err = " ".join(done.stderr.split())
    assert "4 rewrites failed in a row (search.max_consecutive_failed_rewrites)" in err
    assert "diagnosis failed: malformed answer" in err and f"hgm run --resume {run}" in err
    with RunStore.open(run, readonly=True) as store:
        failed = [x for x in store.expansions() if x.status == ExpansionStatus.FAILED]
        assert len(failed) == len(store.expansions()) == 4
