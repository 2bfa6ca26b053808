"""SWE-bench end to end with the seed agent and the scripted LLM, through the CLI:

- `hgm eval-agent` on a local instance, on both backends: the agent runs in the instance
  environment (/testbed, the instance's Python first on PATH), sees one commit and no later
  history, edits through its tools, and the fresh-container scoring solves it;
- `hgm run --swe-bench` over the local instances grows a tree, survives a SIGKILL, resumes to the
  end, and `hgm show-tree` reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_swe_bench_scoring import BASE_IMAGE, ENV_TASK, LOCAL, TASK, bench, sandbox  # noqa: F401 - fixtures

from hgm.domain import EvalStatus
from hgm.store import RunStore

from llm_scripts import write_scripts

pytestmark = [pytest.mark.slow, pytest.mark.docker]
AGENT = Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial"
LOOK = "pwd; git log --all --format='COMMIT %s' | cat; python -c 'import parse, sys; print(sys.executable)'"
CHECK = (
    "python -c \"import parse; print('offset', parse.parse('{:%H:%M:%S%z}', '12:34:56+0530').fixed[0].utcoffset())\""
)


def solve_script(path: Path) -> str:
    """Solves parse-1.22.3 with bash and editor calls; gives up on the other instances."""
    fix = {"command": "str_replace", "path": "parse/__init__.py", "old_str": "        return dt.time()\n",
           "new_str": "        return dt.timetz()\n"}
    path.write_text(json.dumps({
        "rules": [{"match": "Several datetime parsing bugs|Modifying a cache while iterating|Copies of a cache share",
                   "on": "any",
                   "content": "I give up."}],
        "responses": [
            {"content": "Looking around.", "tool_calls": [{"name": "bash", "arguments": {"command": LOOK}}]},
            {"content": "Fixing.", "tool_calls": [{"name": "editor", "arguments": fix}]},
            {"content": "Checking.", "tool_calls": [{"name": "bash", "arguments": {"command": CHECK}}]},
            {"content": "Done."},
        ]}))
    return f"scripted:{path}"


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "hgm.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_the_seed_agent_solves_a_local_instance_in_its_environment(bench, sandbox, tmp_path):  # noqa: F811
    logs = tmp_path / "logs"
    done = cli("eval-agent", str(AGENT), TASK, "--swe-bench", "--dataset", str(LOCAL), "--sandbox", sandbox.name,
               "--llm", solve_script(tmp_path / "llm.json"), "--output", str(logs),
               "--set", f"benchmark.build_base={BASE_IMAGE}", "--set", "sandbox.agent_timeout_s=300")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("solved"), done.stdout + done.stderr[-2000:]
    chat = (logs / "agent" / "chat.md").read_text()
    assert "/testbed\n" in chat and "/opt/testbed-env/bin/python" in chat  # the instance's own Python
    commits = [line for line in chat.splitlines() if line.startswith("COMMIT ")]
    assert commits == [f"COMMIT {TASK}: the repository at base_commit "
                       f"(sweb.eval.x86_64.r1chardj0n3s_1776_parse-1.22.3:latest)"]  # nothing after base_commit
    assert "offset 5:30:00" in chat
    assert "+        return dt.timetz()" in (logs / "patch.diff").read_text()
    timings = json.loads((logs / "timings.json").read_text())
    assert timings["eval_s"] > 0 and timings["apply_s"] > 0


def test_the_agent_runs_with_the_images_environment(bench, sandbox, tmp_path):  # noqa: F811
    """The instance image sets PYTHONPATH and VIRTUAL_ENV through ENV: the agent's commands see them,
    so the package imports from the work tree as under the official harness."""
    look = ("echo PYTHONPATH=$PYTHONPATH VIRTUAL_ENV=$VIRTUAL_ENV; "
            "python -c 'import cachetools; print(cachetools.__file__)'")
    script = tmp_path / "llm.json"
    script.write_text(json.dumps({"responses": [
        {"content": "Looking.", "tool_calls": [{"name": "bash", "arguments": {"command": look}}]},
        {"content": "Done."}]}))
    logs = tmp_path / "logs"
    done = cli("eval-agent", str(AGENT), ENV_TASK, "--swe-bench", "--dataset", str(LOCAL), "--sandbox", sandbox.name,
               "--llm", f"scripted:{script}", "--output", str(logs), "--set", f"benchmark.build_base={BASE_IMAGE}",
               "--set", "sandbox.agent_timeout_s=300")
    assert done.stdout.startswith("empty_patch"), done.stdout + done.stderr[-2000:]
    chat = (logs / "agent" / "chat.md").read_text()
    assert "PYTHONPATH=/testbed/src VIRTUAL_ENV=/opt/testbed-env" in chat
    assert "/testbed/src/cachetools/__init__.py" in chat


def finished(run: Path) -> list[tuple]:
    if not (run / "run.sqlite").exists():
        return []
    try:
        with RunStore.open(run, readonly=True) as s:
            return [(e.id, e.node_id, e.task_id, e.status) for e in s.evaluations() if e.status != EvalStatus.IN_FLIGHT]
    except Exception:  # the store is being created
        return []


def test_a_swe_bench_run_grows_a_tree_survives_sigkill_and_resumes(bench, polyglot_path, tmp_path):  # noqa: F811
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    args = ["run", "--swe-bench", "--dataset", str(LOCAL), "--subset", "all", "--sandbox", "bwrap",
            "--downstream-llm", solve_script(tmp_path / "solve.json"), "--self-improve-llm", models["self_improve"],
            "--diagnose-llm", models["diagnose"], "--max-task-evals", "5", "--initial-evals", "3", "--workers", "1",
            "--run-dir", str(run), "--set", "search.initial_expansions=1", "--set", "sandbox.agent_timeout_s=300",
            "--set", f"benchmark.build_base={BASE_IMAGE}"]
    proc = subprocess.Popen([sys.executable, "-m", "hgm.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "COLUMNS": "300"})
    end = time.monotonic() + 900
    while len(finished(run)) < 1:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, "no evaluation finished in 900 s"
        time.sleep(0.5)
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.communicate()
    before = finished(run)

    done = cli("run", "--resume", str(run), timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    after = finished(run)
    assert set(before) <= set(after)
    counted = [e for e in after if e[3] != EvalStatus.INFRA_ERROR]
    assert len(counted) == 5, after
    assert (run.parent / "run" / "nodes").is_dir()
    solved = [e for e in counted if e[3] == EvalStatus.SOLVED]
    assert solved and all(e[2] == TASK for e in solved), after
    with RunStore.open(run, readonly=True) as s:
        assert len(s.nodes()) >= 2  # the root and at least one rewrite committed
        assert s.config.benchmark.name == "swe-bench"

    shown = cli("show-tree", str(run), "--format", "json", timeout=120)
    assert shown.returncode == 0, shown.stderr
    tree = {node["id"]: node for node in json.loads(shown.stdout)}
    root = next(n for n in tree.values() if n["parent_id"] is None)
    assert len(tree) >= 2 and root["clade_evaluated"] == 5 and root["clade_solved"] == len(solved)
    assert sum(n["final"] for n in tree.values()) == 1

    diagnosis = next(run.glob("nodes/*/expansions/*/diagnose.md")).read_text()
    assert "real GitHub issues of Python repositories (SWE-bench)" in diagnosis  # the benchmark's own words
    assert "Several datetime parsing bugs" in diagnosis or "Modifying a cache" in diagnosis  # the failed instance
    statement = next(run.glob("nodes/*/expansions/*/agent/statement.md")).read_text()
    assert "Its tasks are real GitHub issues of Python repositories" in statement and "Exercism" not in statement


def test_benchmark_list_fetch_and_validate_commands(bench):  # noqa: F811
    listed = cli("benchmark", "list", "swe-bench", "--dataset", str(LOCAL), timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert "verified-60" in listed.stdout and "tkem/cachetools 2" in listed.stdout
    fetched = cli("benchmark", "fetch", "swe-bench", "--dataset", str(LOCAL), "--subset", "all", "--sandbox", "docker",
                  "--base", BASE_IMAGE)
    assert fetched.returncode == 0 and "4 instance environments ready for the docker backend" in fetched.stderr, \
        fetched.stderr[-2000:]
    validated = cli("benchmark", "validate", "swe-bench", "--dataset", str(LOCAL), "--tasks", TASK, "--sandbox",
                    "docker", "--base", BASE_IMAGE)
    assert validated.returncode == 0, validated.stdout + validated.stderr[-2000:]
    row = next(line for line in validated.stdout.splitlines() if "r1chardj0n3s/parse" in line)
    assert [c.strip() for c in row.split("│")[2:6]] == [
        "1",
        "1",
        "1",
        "0",
    ]  # tasks, gold solved, bases unsolved, unexpected
