"""`hgm run` and its spend at start and at the end: what bounds the LLM spend is said before any
work; a second Ctrl-C ends every sandboxed process, cgroup and temporary directory before exiting."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_scripts import write_scripts

TASKS = "python__transpose,python__proverb"


def sleeping(marker: str) -> list[int]:
    """Host pids of `sleep N.marker` processes (the agent's long command, inside the sandbox)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0") if proc.name.isdigit() else []
        except OSError:
            continue
        if len(argv) >= 2 and argv[0].endswith(b"sleep") and argv[1].endswith(marker.encode()):
            found.append(int(proc.name))
    return found


def hgm_cgroups(pid: int) -> list[Path]:
    """Job cgroups of the hgm process `pid` that still exist (bwrap makes hgm-<pid>-<n>)."""
    return [d for d in Path("/sys/fs/cgroup").glob(f"**/hgm-{pid}-*") if d.is_dir()]


@pytest.mark.slow
def test_second_ctrl_c_leaves_no_process_cgroup_or_temp_dir(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    marker = f"{os.getpid()}{time.monotonic_ns() % 10**9}"
    long = tmp_path / "scripts" / "long.json"  # the agent starts a command that would run for an hour
    long.write_text(json.dumps({"rules": [{"match": ".", "content": "Working on it.", "tool_calls": [
        {"name": "bash", "arguments": {"command": f"sleep 3000.{marker} & sleep 3001.{marker}; wait"}}]}]}))
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = {**os.environ, "COLUMNS": "300", "TMPDIR": str(private_tmp)}
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hgm.cli", "run", "--tasks", TASKS, "--from", str(polyglot_path),
         "--sandbox", "bwrap", "--downstream-llm", f"scripted:{long}", "--self-improve-llm", models["self_improve"],
         "--diagnose-llm", models["diagnose"], "--max-task-evals", "4", "--initial-evals", "2", "--workers", "2",
         "--run-dir", str(run), "--set", "search.initial_expansions=0", "--max-usd", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while len(sleeping(marker)) < 4:  # both workers' agents are in their long command
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the agents never started their long command"
        time.sleep(0.5)
    assert hgm_cgroups(proc.pid), "the commands run in cgroups of the hgm process"
    proc.send_signal(signal.SIGINT)  # first: no new work, wait for the work in flight (an hour)
    time.sleep(2)
    assert proc.poll() is None and len(sleeping(marker)) == 4
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)  # second: abandon it
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert time.monotonic() - t0 < 60
    assert "Abandoned work in flight" in err and f"hgm run --resume {run}" in err
    assert sleeping(marker) == [], "a sandboxed process outlived the run"
    assert hgm_cgroups(proc.pid) == [], "a cgroup of the run was left behind"
    assert list(private_tmp.iterdir()) == [], "a temporary directory of the run was left behind"
    log = (run / "run.log").read_text()
    assert "abandoned work in flight: 2 sandboxed commands killed" in log
    # said at the start: the downstream model has no price, so the dollar cap cannot bound it
    assert "LLM spend cap: $5.0 (budget.max_usd_run, known prices)" in err
    assert f"models without a known price: scripted:{long}" in err and "budget.max_tokens_run" in err


def test_temporary_directories_of_killed_runs_are_removed_at_the_next_start(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    from hgm.run import _run_tmp

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"hgm-run-{dead.pid}-abc"  # a run killed with SIGKILL left it
    (stale / "hgm-eval-python__x-1").mkdir(parents=True)
    live = tmp_path / f"hgm-run-{os.getppid()}-def"  # a run whose process is alive
    live.mkdir()
    other = tmp_path / "hgm-run-nopid"
    other.mkdir()
    mine = _run_tmp()
    assert not stale.exists() and live.exists() and other.exists()
    assert mine.parent == tmp_path and mine.name.startswith(f"hgm-run-{os.getpid()}-")


def test_live_view_reads_the_gateways_running_totals(tmp_path: Path) -> None:
    from rich.console import Console

    from hgm.config import BudgetConfig, LLMConfig
    from hgm.domain import Usage
    from hgm.llm.gateway import Gateway
    from hgm.run import _View

    before = {"downstream": Usage(2, 1000, 200, 0, 0.5, 0.5), "diagnose": Usage(1, 300, 30, 0, None, 0.0)}
    gw = Gateway(tmp_path / "gw.sock", llm=LLMConfig(), budget=BudgetConfig(), env={}, used_before=before)
    view = _View(gw, tmp_path, budget_usd=2.0, budget_tokens=10_000)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(view.usage_table())
    rows = [" ".join(line.split()) for line in console.export_text().splitlines()]
    assert "downstream 2 1,000 200 0.5000" in rows
    assert "diagnose 1 300 30 0.0000+?" in rows  # its price was unknown
    assert "self_improve 0 0 0 0.0000" in rows
    assert "total 3 1,300 230 0.5000 of the $2.0 cap" in rows
    assert "token cap 1,530 of 10,000 tokens" in rows
