"""`hgm report` / `hgm compare` / `hgm simulate --html` without a browser: what the page holds,
the curves' numbers, grouping and CIs, and reports of a run that is going, killed and resumed
(simulated runs through the real scheduler and SQLite store, in another process)."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.special import betaincinv

from hgm.config import load_config
from hgm.domain import EvalOutcome, EvalStatus, ExpansionOutcome, ExpansionStatus, MetaKey
from hgm.report import load_run, write_report
from hgm.report.compare import ci95, group_labels, write_comparison
from hgm.store import RunStore

from live_runs import hgm, in_flight, report_live_then_kill


def _eval(store: RunStore, node: int, task: str, status: EvalStatus, **kw: object) -> None:
    store.finish_evaluation(store.start_evaluation(node, task), EvalOutcome(status, **kw))  # type: ignore[arg-type]


def _store(run: Path) -> RunStore:
    """root(1) -> 2 -> 3, a failed and an infra-error rewrite of the root, work in flight on 3."""
    store = RunStore.create(run, load_config())
    root = store.add_node(None, "a" * 40, "initial agent")
    _eval(store, root, "python__a", EvalStatus.SOLVED, prompt_tokens=100, completion_tokens=10, cost_usd=0.01,
          log_dir="nodes/1/evals/python__a", detail="12 tests passed")
    _eval(store, root, "python__b", EvalStatus.FAILED)
    _eval(store, root, "python__c", EvalStatus.INFRA_ERROR, error_type="SandboxUnavailable")
    child = store.finish_expansion(store.start_expansion(root), ExpansionOutcome(
        ExpansionStatus.COMMITTED, commit="b" * 40, message="Run the tests first\n\nWhy: ...", entry_task="python__b",
        log_dir="nodes/1/expansions/1"))
    store.finish_expansion(store.start_expansion(root), ExpansionOutcome(
        ExpansionStatus.FAILED, reason="validation failed: own tests (exit 1)", error_type="ValidationFailed"))
    store.finish_expansion(store.start_expansion(root), ExpansionOutcome(ExpansionStatus.INFRA_ERROR, reason="x"))
    assert child is not None
    _eval(store, child, "python__a", EvalStatus.SOLVED)
    _eval(store, child, "python__b", EvalStatus.SOLVED)
    grandchild = store.finish_expansion(store.start_expansion(child), ExpansionOutcome(
        ExpansionStatus.COMMITTED, commit="c" * 40, message="x"))
    assert grandchild is not None
    store.start_evaluation(grandchild, "python__a")  # in flight
    store.llm.record(session="s1", role="diagnose", model="m", node_id=root, task_id="python__b", status="ok",
                       attempts=1, latency_s=0.1, prompt_tokens=3000, completion_tokens=200, cached_tokens=0,
                       cost_usd=0.0034, request={"model": "m", "messages": []}, response_json="{}", error=None)
    store.llm.record(session="s2", role="downstream", model="m", node_id=root, task_id="python__a", status="ok",
                       attempts=1, latency_s=0.1, prompt_tokens=100, completion_tokens=10, cached_tokens=0,
                       cost_usd=None, request={"model": "m", "messages": []}, response_json="{}", error=None)
    return store


def _panels(html: str) -> dict[str, str]:
    m = re.search(r'<script type="application/json" id="hgm-panels">(.*?)</script>', html, re.S)
    assert m, "the page carries the node panels"
    return json.loads(m.group(1))


def test_report_of_a_store_shows_every_agent_and_its_story(tmp_path: Path) -> None:
    run = tmp_path / "run"
    writer = _store(run)  # stays open, with work in flight: the report reads beside a writer
    (run / "nodes" / "1" / "evals" / "python__a" / "agent").mkdir(parents=True)
    (run / "nodes" / "1" / "evals" / "python__a" / "agent" / "chat.md").write_text("hello")
    (run / "nodes" / "1" / "evals" / "python__a" / "test_output.txt").write_text("ok")
    (run / "nodes" / "1" / "expansions" / "1").mkdir(parents=True)
    (run / "nodes" / "1" / "expansions" / "1" / "diagnosis.json").write_text(
        json.dumps(
            {
                "root_cause": "It never ran the tests.",
                "improvement": "Run them.",
                "problem_statement": "Make it run tests.",
            }
        )
    )
    writer.set_meta(MetaKey.FINALISTS, json.dumps({"1": 4, "2": 4}))  # as the search records them
    out = write_report(run)
    assert out == run / "report.html"
    html = out.read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|@import", html), "nothing is loaded from outside"
    panels = _panels(html)
    assert set(panels) == {"1", "2", "3"}
    assert "It never ran the tests." in panels["2"] and "entry task python__b" in panels["2"]
    assert "No code archive for this run" in panels["2"]  # commits that no archive holds
    assert "validation failed: own tests" in panels["1"] and "ValidationFailed" in panels["1"]
    assert 'href="nodes/1/evals/python__a/agent/chat.md"' in panels["1"]
    assert 'href="nodes/1/evals/python__a/test_output.txt"' in panels["1"]
    assert "patch.diff" not in panels["1"], "links only to logs that exist"
    assert "12 tests passed" in panels["1"] and "in_flight" in panels["3"]
    assert "finalist" in panels["1"] and "finalist" in panels["2"] and "finalist" not in panels["3"]

    data = load_run(run)
    assert data.status == "killed"  # work in flight, no other process holds the store: a kill, resumable
    assert [s.id for s in data.stats.values()] == [1, 2, 3] and data.evals_used == 4
    assert data.usage["diagnose"].cost_usd == pytest.approx(0.0034) and data.usage["downstream"].cost_usd is None
    assert data.best == 2  # no final agent named: the best so far by the final-agent rule
    writer.set_meta(MetaKey.FINAL_AGENT, "2")
    writer.close()
    assert load_run(run).status == "finished"


def test_curves_replay_the_results_in_the_order_they_finished(tmp_path: Path) -> None:
    store = _store(tmp_path / "run")
    c = load_run(tmp_path / "run").curves
    store.close()
    q = load_config().search.final_quantile
    assert c.evals == [0, 1, 2, 3, 4, 4]  # the last point: work after the last result (a rewrite, in flight)
    lb = lambda s, f: pytest.approx(float(betaincinv(1 + s, 1 + f, q)))  # noqa: E731
    # root solves, root fails, the child solves (1/1 beats the root's 1/2), the child solves again
    assert c.best_lower_bound[1:] == [lb(1, 0), lb(1, 1), lb(1, 0), lb(2, 0), lb(2, 0)]
    assert c.best_agent[1:] == [1, 1, 2, 2, 2]
    assert c.best_success_rate[1:] == [1.0, 0.5, 1.0, 1.0, 1.0]
    assert c.agents[-1] == 3 and c.failed_rewrites[-1] == 1
    assert c.infra_errors[-1] == 2  # one evaluation, one rewrite
    assert c.tokens["diagnose"][-1] == 3200 and c.dollars["diagnose"][-1] == pytest.approx(0.0034)
    assert all(a <= b for a, b in itertools.pairwise(c.seconds))


def test_grouping_and_confidence_intervals() -> None:
    base = load_config().model_dump(mode="json")
    other = json.loads(json.dumps(base))
    other["search"]["seed"] = 7
    greedy = json.loads(json.dumps(base))
    greedy["search"]["policy"] = "greedy"
    alpha = json.loads(json.dumps(base))
    alpha["search"]["alpha"] = 0.4
    labels, keys = group_labels([base, other, greedy, alpha])
    assert keys == ["search.policy", "search.alpha"]
    assert labels == ["hgm, search.alpha=0.6", "hgm, search.alpha=0.6", "greedy, search.alpha=0.6",
                      "hgm, search.alpha=0.4"]
    mean, half = ci95([0.5, 0.7, 0.6])
    assert mean == pytest.approx(0.6) and half == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-5)
    assert ci95([0.4])[0] == 0.4


def test_compare_and_report_errors_read_like_help(tmp_path: Path) -> None:
    done = hgm("report", str(tmp_path))
    assert done.returncode == 2 and "no hgm run" in done.stderr and "Traceback" not in done.stderr
    _store(tmp_path / "run").close()
    done = hgm("compare", str(tmp_path / "run"), str(tmp_path / "run"), "-o", str(tmp_path / "c.html"))
    assert done.returncode == 2 and "given twice" in done.stderr
    done = hgm("compare", str(tmp_path / "run"), str(tmp_path / "nope"))
    assert done.returncode == 2 and "nope" in done.stderr and "hgm runs" in done.stderr
    out = write_comparison([tmp_path / "run"], tmp_path / "c.html")
    assert "final agent&#x27;s own success rate" in out.read_text()


def _sim(run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hgm.cli", "simulate", "--run-dir", str(run), "--max-task-evals", "400", *extra]


def test_report_while_running_after_a_kill_and_after_resuming(tmp_path: Path) -> None:
    run = tmp_path / "sim"
    proc = subprocess.Popen(_sim(run, "--delay", "0.05", "--set", "search.workers=2"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    report_live_then_kill(proc, run, results=20, live=tmp_path / "live.html", timeout_s=120)
    killed = hgm("report", str(run), "-o", str(tmp_path / "killed.html"))
    assert killed.returncode == 0, killed.stderr
    with RunStore.open(run, readonly=True) as s:
        nodes = len(s.nodes())
    html = (tmp_path / "killed.html").read_text()
    assert ("· killed ·" if in_flight(run) else "· stopped ·") in html and f"· {nodes} agents ·" in html
    assert set(_panels(html)) == {str(i) for i in range(1, nodes + 1)}

    resumed = subprocess.run(_sim(run), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    done = hgm("report", str(run))
    assert done.returncode == 0, done.stderr
    html = (run / "report.html").read_text()
    assert "· finished ·" in html and "400 evaluations used" in html
    listed = hgm("runs", str(tmp_path))
    assert listed.returncode == 0 and re.search(r"sim\s+finished\s+hgm\s+400/400", listed.stdout), listed.stdout


def test_simulate_html_writes_the_comparison(tmp_path: Path) -> None:
    out = tmp_path / "sim.html"
    done = hgm("simulate", "--seeds", "3", "--max-task-evals", "60", "--policies", "hgm,greedy", "--html", str(out))
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert "final agent&#x27;s true utility" in html and "greedy seed 2" in html and "hgm seed 0" in html
    done = hgm("simulate", "--run-dir", str(tmp_path / "x"), "--html", str(out))
    assert done.returncode == 2 and "hgm report" in done.stderr


def test_a_run_killed_before_its_first_agent_still_reports(tmp_path: Path) -> None:
    RunStore.create(tmp_path / "run", load_config()).close()  # the store exists, nothing else
    html = write_report(tmp_path / "run").read_text()
    assert "· stopped · 0 agents · 0 evaluations used" in html and _panels(html) == {}
    _store(tmp_path / "other").close()
    out = write_comparison([tmp_path / "run", tmp_path / "other"], tmp_path / "c.html")
    assert str(tmp_path / "run") in out.read_text()
