"""`hgm run --dry-run` (hgm/forecast.py): the plan and a cost range, with nothing started; tokens
from an earlier run when there is one; the expected rewrites against the real scheduler."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hgm.config import load_config
from hgm.domain import EvalOutcome, EvalStatus, ExpansionOutcome, ExpansionStatus
from hgm.executors.local import LocalExecutor
from hgm.forecast import _k, expected_rewrites
from hgm.memory_store import MemoryStore
from hgm.search import Search, job_function
from hgm.store import RunStore

from llm_scripts import write_scripts


def hgm(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hgm.cli", *args], check=False, capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**(env or os.environ), "COLUMNS": "300"})


@pytest.mark.parametrize("budget, n_tasks, initial", [(60, 10, 5), (200, 50, 5), (120, 4, 2), (40, 100, 0)])
def test_expected_rewrites_are_what_the_scheduler_does_when_rewrites_succeed(budget, n_tasks, initial):
    cfg = load_config(None, [f"search.max_task_evals={budget}", f"search.initial_expansions={initial}",
                             "search.initial_evals=3"])

    def expand(parent_id: int, expansion_id: int) -> ExpansionOutcome:
        return ExpansionOutcome(ExpansionStatus.COMMITTED, commit=f"c{expansion_id}")

    def evaluate(node_id: int, task_id: str, eval_id: int) -> EvalOutcome:
        return EvalOutcome(EvalStatus.SOLVED if (node_id + eval_id) % 3 == 0 else EvalStatus.FAILED)

    store = MemoryStore()
    store.add_node(None, "root")
    Search(store, cfg.search, [f"t{i}" for i in range(n_tasks)], LocalExecutor(job_function(expand, evaluate), 1)).run()
    forecast, how = expected_rewrites(cfg, n_tasks)
    assert forecast == len(store.expansions()), how


NO_KEY = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
# any connection the dry run tried would go to a proxy that is not there (and it has no key to send)
OFFLINE = {**NO_KEY, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}


def test_dry_run_prints_the_plan_and_a_range_with_no_key_and_no_network(tmp_path):
    done = hgm("run", "--dry-run", "--polyglot", "--subset", "small", "--self-improve-llm", "deepseek-chat",
               cwd=tmp_path, env=OFFLINE)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "dry run: nothing was started" in out
    assert "tasks:     polyglot, subset small: 10 tasks" in out
    assert "budget:    800 task evaluations, policy hgm" in out
    assert "rewrites:  about 79 = max(initial_expansions 5, floor(799^0.6) = 55, ceil(800 / 10 tasks) - 1 = 79)" in out
    assert "self_improve  deepseek-chat  ($0.28 in / $0.42 out per M tokens)" in out
    assert "from documented defaults" in out and "forecast:" in out and "$" in out.split("forecast:")[1]
    assert "evaluations: 800 (--max-task-evals): binds" in out
    assert list(tmp_path.iterdir()) == [], "no run directory (nor anything else) was created"


def test_caps_that_bind_are_named(tmp_path):
    done = hgm("run", "--dry-run", "--polyglot", "--subset", "small", "--max-task-evals", "60", "--max-usd", "0.01",
               "--set", "budget.max_tokens_run=1000000000", cwd=tmp_path, env=OFFLINE)
    assert done.returncode == 0, done.stderr
    assert "dollars: $0.01 (--max-usd): binds" in done.stdout
    assert "tokens: 1,000,000,000 (budget.max_tokens_run): does not bind" in done.stdout
    assert "evaluations: 60 (--max-task-evals): a spend cap is likely to end the run first" in done.stdout


@pytest.mark.slow
def test_dry_run_takes_tokens_from_an_earlier_scripted_run(tmp_path, polyglot_path):
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    runs = tmp_path / "runs"
    run = runs / "earlier"
    done = hgm("run", "--tasks", "python__transpose,python__proverb", "--from", str(polyglot_path),
               "--downstream-llm", models["downstream"], "--self-improve-llm", models["self_improve"],
               "--diagnose-llm", models["diagnose"], "--max-task-evals", "2", "--initial-evals", "1",
               "--run-dir", str(run), "--set", "search.initial_expansions=1", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with RunStore.open(run, readonly=True) as store:
        evals = sum(e.status != EvalStatus.IN_FLIGHT for e in store.evaluations())
        rewrites = sum(x.status != ExpansionStatus.IN_FLIGHT for x in store.expansions())
        usage = store.llm.usage_by_role()
    assert evals == 2 and rewrites >= 1 and usage["downstream"].prompt_tokens > 0

    planned = hgm("run", "--dry-run", "--polyglot", "--subset", "small", "--max-task-evals", "60",
                  "--runs-dir", str(runs), cwd=tmp_path, env=OFFLINE)
    assert planned.returncode == 0, planned.stderr
    out = planned.stdout
    assert f"from 1 earlier polyglot run under {runs}" in out
    per_eval = (
        _k(round(usage["downstream"].prompt_tokens / evals)),
        _k(round(usage["downstream"].completion_tokens / evals)),
    )
    assert f"evaluation (downstream)     {per_eval[0]}-{per_eval[0]} in, {per_eval[1]}-{per_eval[1]} out" in out
    diagnosis = _k(round(usage["diagnose"].prompt_tokens / rewrites))
    assert f"rewrite: diagnosis          {diagnosis}-{diagnosis} in" in out
    assert "documented defaults" not in out


def test_runs_dir_needs_dry_run_and_a_directory(tmp_path):
    alone = hgm("run", "--runs-dir", str(tmp_path), cwd=tmp_path, env=OFFLINE)
    assert alone.returncode == 2 and "--runs-dir goes with --dry-run" in alone.stderr
    missing = hgm("run", "--dry-run", "--runs-dir", str(tmp_path / "nope"), cwd=tmp_path, env=OFFLINE)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr


def test_a_target_without_an_llm_forecasts_no_evaluation_tokens(tmp_path):
    from hgm.benchmarks.target.spec import load_target
    from hgm.forecast import forecast

    target = Path(__file__).resolve().parent.parent / "examples" / "qa-agent" / "target"
    cfg = load_config(overrides=["search.max_task_evals=10", "benchmark.name=target", "benchmark.subset=all"])
    cfg.benchmark.target = load_target(target)
    offline = forecast(cfg, tmp_path)
    cfg.benchmark.target = load_target(target, ["target.llm=true"])
    online = forecast(cfg, tmp_path)
    per_eval = offline.tokens.downstream.prompt[0] + offline.tokens.downstream.completion[0]
    assert online.total_tokens[0] - offline.total_tokens[0] == 10 * per_eval
