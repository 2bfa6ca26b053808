"""The CLI around a run: `hgm runs`, `show-tree` piped and with --usage, the seed agent's name
(`initial`) and `hgm run --agent` checks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hgm.config import load_config
from hgm.domain import EvalOutcome, EvalStatus, ExpansionOutcome, ExpansionStatus, MetaKey
from hgm.store import RunStore

LONG = "Teach the agent to read the failing test's output line by line before it edits any file " * 2


def hgm(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    # COLUMNS=40: a narrow terminal's width must not fold piped output
    return subprocess.run([sys.executable, "-m", "hgm.cli", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**os.environ, "COLUMNS": "40"})


def _run(path: Path, *, final: bool, in_flight: bool = False, policy: str = "hgm") -> None:
    store = RunStore.create(path, load_config(None, [f"search.policy={policy}", "search.max_task_evals=20"]))
    root = store.add_node(None, "a" * 40, "initial agent")
    store.finish_evaluation(store.start_evaluation(root, "python__a"), EvalOutcome(EvalStatus.SOLVED))
    store.finish_evaluation(store.start_evaluation(root, "python__b"), EvalOutcome(EvalStatus.FAILED))
    child = store.finish_expansion(store.start_expansion(root), ExpansionOutcome(
        ExpansionStatus.COMMITTED, commit="b" * 40, message=LONG))
    assert child is not None
    store.finish_evaluation(store.start_evaluation(child, "python__a"), EvalOutcome(EvalStatus.SOLVED))
    store.llm.record(session="s1", role="self_improve", model="m", node_id=root, task_id=None, status="ok",
                       attempts=1, latency_s=0.1, prompt_tokens=1234, completion_tokens=56, cached_tokens=0,
                       cost_usd=0.25, request={"model": "m", "messages": []}, response_json="{}", error=None)
    if in_flight:
        store.start_evaluation(child, "python__b")
    if final:
        store.set_meta(MetaKey.FINAL_AGENT, str(child))
    store.close()


def test_runs_lists_status_budget_final_agent_and_dollars(tmp_path: Path) -> None:
    _run(tmp_path / "a-finished", final=True)
    _run(tmp_path / "b-killed", final=False, in_flight=True, policy="dgm")
    _run(tmp_path / "c-stopped", final=False)
    (tmp_path / "d-broken").mkdir()
    (tmp_path / "d-broken" / "run.sqlite").write_text("not a database")
    (tmp_path / "not-a-run").mkdir()
    done = hgm("runs", str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["run", "status", "policy", "evals", "used", "agents", "final", "agent", "dollars",
                                "started"]
    row = {Path(line.split()[0]).name: line for line in lines[1:]}
    assert set(row) == {"a-finished", "b-killed", "c-stopped", "d-broken"}
    assert re.search(r"finished\s+hgm\s+3/20\s+2\s+node 2 \(1/1\)\s+\$0\.2500", row["a-finished"])
    assert re.search(r"killed\s+dgm\s+3/20\s+2\s+-", row["b-killed"])
    assert re.search(r"stopped\s+hgm", row["c-stopped"])
    assert "unreadable" in row["d-broken"]
    data = json.loads(hgm("runs", str(tmp_path), "--format", "json").stdout)
    assert {Path(r["run"]).name: r["final_agent"] for r in data}["a-finished"] == 2
    assert hgm("runs", str(tmp_path / "a-finished")).stdout.count("a-finished") == 1  # a run itself
    done = hgm("runs", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert hgm("runs", cwd=tmp_path).returncode == 2  # no ./runs here: said so


def test_show_tree_piped_keeps_one_node_a_line_and_shows_usage(tmp_path: Path) -> None:
    _run(tmp_path / "run", final=True)
    done = hgm("show-tree", str(tmp_path / "run"), "--usage")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("node 1  aaaaaaa  own 1/2  clade 2/3  CMP 0.67  children 1  failed expansions 0")
    assert lines[1].startswith("  node 2  bbbbbbb  own 1/1") and lines[1].endswith("<- FINAL")
    assert "LLM usage by role" in done.stdout
    assert re.search(r"self_improve\s+1\s+1234\s+56\s+0\.2500", done.stdout)
    shown = json.loads(hgm("show-tree", str(tmp_path / "run"), "--usage", "--format", "json").stdout)
    assert shown["usage"]["self_improve"]["prompt_tokens"] == 1234 and len(shown["nodes"]) == 2
    assert isinstance(json.loads(hgm("show-tree", str(tmp_path / "run"), "--format", "json").stdout), list)
    done = hgm("show-tree", str(tmp_path / "run"), "--usage", "--format", "dot")
    assert done.returncode == 2 and "--usage" in done.stderr


def test_run_agent_is_checked_before_the_run_directory_is_touched(tmp_path: Path) -> None:
    (tmp_path / "not-an-agent").mkdir()
    out = tmp_path / "run"
    done = hgm("run", "--agent", str(tmp_path / "not-an-agent"), "--run-dir", str(out),
               "--downstream-llm", "scripted:x", "--self-improve-llm", "scripted:x", "--diagnose-llm", "scripted:x")
    assert done.returncode == 2 and "no coding_agent.py" in done.stderr and not out.exists()
    done = hgm("run", "--agent", str(tmp_path / "missing"), "--run-dir", str(out))
    assert done.returncode == 2 and "`initial`" in done.stderr and not out.exists()
    _run(tmp_path / "old", final=False)
    done = hgm("run", "--resume", str(tmp_path / "old"), "--agent", "initial")
    assert done.returncode == 2 and "drop --agent" in done.stderr


@pytest.mark.slow
def test_eval_agent_initial_is_the_seed_agent(tmp_path: Path, polyglot_path: Path) -> None:
    reference = (polyglot_path / "python" / "exercises" / "practice" / "transpose" / ".meta" / "example.py").read_text()
    script = tmp_path / "solve.json"
    script.write_text(json.dumps([
        {"tool_calls": [{"name": "editor", "arguments": {"command": "create", "path": "transpose.py",
                                                          "file_text": reference}}]},
        {"content": "Done."}]))
    done = hgm(
        "eval-agent",
        "initial",
        "python__transpose",
        "--llm",
        f"scripted:{script}",
        "--from",
        str(polyglot_path),
        "--sandbox",
        "bwrap",
        "--output",
        str(tmp_path / "logs"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("solved")
