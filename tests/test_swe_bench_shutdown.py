"""Stopping `hgm run --swe-bench` (a second Ctrl-C, or a SIGTERM) while its agents run in their
instance environments ends every sandbox of the run before it exits, on both backends: no
container with the run's labels and no process of the agents' commands is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_run_shutdown import hgm_cgroups, sleeping
from test_swe_bench_scoring import BASE_IMAGE, LOCAL, bench, sandbox  # noqa: F401 - fixtures

from llm_scripts import write_scripts

pytestmark = [pytest.mark.slow, pytest.mark.docker]
TASKS = "r1chardj0n3s__parse-1.22.3,tkem__cachetools-7.3.1"


def labelled(client, pid: int) -> list[str]:
    """Containers (running or not) that the hgm process `pid` created."""
    return [c["Id"][:12] for c in client.api.containers(all=True, filters={"label": f"hgm.pid={pid}"})]


@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM,)],
                         ids=["ctrl-c-twice", "sigterm"])
def test_stopping_a_swe_bench_run_leaves_no_container_or_process(bench, sandbox, tmp_path, polyglot_path,  # noqa: F811
                                                                  signals):
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    marker = f"{os.getpid()}{time.monotonic_ns() % 10**9}"
    long = tmp_path / "scripts" / "long.json"  # every agent starts a command that would run for an hour
    long.write_text(json.dumps({"rules": [{"match": ".", "content": "Working on it.", "tool_calls": [
        {"name": "bash", "arguments": {"command": f"sleep 3000.{marker} & sleep 3001.{marker}; wait"}}]}]}))
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hgm.cli", "run", "--swe-bench", "--dataset", str(LOCAL), "--tasks", TASKS,
         "--sandbox", sandbox.name, "--downstream-llm", f"scripted:{long}", "--self-improve-llm",
         models["self_improve"], "--diagnose-llm", models["diagnose"], "--max-task-evals", "4", "--initial-evals", "2",
         "--workers", "2", "--run-dir", str(run), "--set", "search.initial_expansions=0",
         "--set", f"benchmark.build_base={BASE_IMAGE}", "--set", "sandbox.agent_timeout_s=3600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "300", "TMPDIR": str(private_tmp)})
    deadline = time.monotonic() + 300
    while len(sleeping(marker)) < 4:  # both agents are in their long command, in their instance images
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the agents never started their long command"
        time.sleep(0.5)
    if sandbox.name == "docker":
        assert len(labelled(bench.envs.client, proc.pid)) == 2, "each agent runs in a container of its instance image"
    else:
        assert hgm_cgroups(proc.pid), "the commands run in cgroups of the hgm process"
    if len(signals) == 2:
        proc.send_signal(signals[0])  # first Ctrl-C: no new work, wait for the work in flight (an hour)
        time.sleep(2)
        assert proc.poll() is None and len(sleeping(marker)) == 4
    t0 = time.monotonic()
    proc.send_signal(signals[-1])  # the second Ctrl-C, or SIGTERM: abandon it
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert time.monotonic() - t0 < 60
    assert "Abandoned work in flight" in err and f"hgm run --resume {run}" in err
    assert sleeping(marker) == [], "a process of the run's agents outlived it"
    assert labelled(bench.envs.client, proc.pid) == [], "a container of the run was left behind"
    assert hgm_cgroups(proc.pid) == [], "a cgroup of the run was left behind"
    assert list(private_tmp.iterdir()) == [], "a temporary directory of the run was left behind"
    assert "abandoned work in flight: 2 sandboxed commands killed" in (run / "run.log").read_text()
