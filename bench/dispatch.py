"""How many worker slots one head keeps busy: dispatch overhead per job and slot utilisation.

Synthetic jobs (hgm.simulate.sleep_job: no LLM, sleep only) go through the real scheduler
(hgm/search.py) and the real SQLite run store (WAL, synchronous=FULL), on the local executor
(threads) and, with --ray, on a one-machine Ray instance. For each number of slots N:

  jobs/s        jobs finished per second of wall time
  head ms/job   the scheduler's own time per job: wall time not spent waiting for results
                (commit, decide, record, submit), divided by the jobs
  busy          slot-seconds from each job's dispatch to its result / (N x the time from the first to
                the last dispatch): how full the head keeps the slots while it has work to give
  work/window   slot-seconds of work (jobs x job length) / (N x the time from the first dispatch to
                the last result): a lower bound that also charges executor latency (Ray's task start)
                and the ramp-down when the budget runs out

With --hgm-run it also times the same small `hgm run` (scripted LLM, bwrap, 3 Python tasks) on
the local and the ray executor.

Usage: python bench/dispatch.py [--slots 8 16 32 64] [--job-s 2] [--rounds 8] [--ray] [--hgm-run]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hgm.config import load_config
from hgm.executors import Delivery, JobKey
from hgm.executors.local import LocalExecutor
from hgm.search import Search
from hgm.simulate import sleep_job
from hgm.store import RunStore

REPO = Path(__file__).resolve().parents[1]


class Timed:
    """Wraps an executor: when each job was submitted and delivered, and the time spent in wait()."""

    def __init__(self, inner) -> None:
        self.inner, self.name = inner, inner.name
        self.waiting = 0.0
        self.submitted: dict[JobKey, float] = {}
        self.spans: list[tuple[float, float]] = []

    def slots(self) -> int:
        return self.inner.slots()

    def submit(self, key: JobKey, job: object) -> None:
        self.submitted[key] = time.monotonic()
        self.inner.submit(key, job)

    def wait(self, timeout: float | None) -> list[Delivery]:
        start = time.monotonic()
        out = self.inner.wait(timeout)
        now = time.monotonic()
        self.waiting += now - start
        self.spans += [(self.submitted.pop(d.key), now) for d in out if d.key in self.submitted]
        return out

    def cancel(self, key: JobKey) -> None:
        self.inner.cancel(key)

    def close(self) -> None:
        self.inner.close()


def measure(slots: int, job_s: float, rounds: int, executor_name: str) -> dict[str, float]:
    budget = slots * rounds
    config = load_config(None, [f"search.max_task_evals={budget}", f"search.workers={slots}",
                                "search.initial_evals=0", "search.initial_expansions=0"])
    with tempfile.TemporaryDirectory(prefix="hgm-bench-dispatch-") as tmp:
        store = RunStore.create(Path(tmp) / "run", config)
        store.add_node(None, "root")
        if executor_name == "ray":
            from hgm.executors.ray import RayExecutor

            inner = RayExecutor(address=None, head_address="127.0.0.1", local_slots=slots,
                                function=sleep_job).start(job_s)
        else:
            inner = LocalExecutor(lambda job: sleep_job(job_s, job), slots)
        executor = Timed(inner)
        tasks = [f"task{i:05d}" for i in range(budget)]
        search = Search(store, config.search, tasks, executor)
        start = time.monotonic()
        search.run()
        wall = time.monotonic() - start
        executor.close()
        store.close()
    jobs = len(executor.spans)
    first = min(s for s, _ in executor.spans)
    last = max(s for s, _ in executor.spans)
    end = max(e for _, e in executor.spans)
    busy = sum(min(e, last) - s for s, e in executor.spans if s < last)
    return {"slots": slots, "jobs": jobs, "wall_s": wall, "jobs_per_s": jobs / wall,
            "head_ms_per_job": 1000 * (wall - executor.waiting) / jobs,
            "busy": busy / (slots * (last - first)) if last > first else float("nan"),
            "work": jobs * job_s / (slots * (end - first))}


def hgm_run_wall(executor: str, tmp: Path) -> float:
    sys.path.insert(0, str(REPO / "tests"))
    from llm_scripts import write_scripts

    polyglot = REPO.parent / "shared" / "polyglot-benchmark"
    models = write_scripts(tmp / f"scripts-{executor}", polyglot)
    argv = [sys.executable, "-m", "hgm.cli", "run", "--tasks", "python__transpose,python__proverb,python__beer-song",
            "--from", str(polyglot), "--sandbox", "bwrap", "--executor", executor, "--workers", "2",
            "--downstream-llm", models["downstream"], "--self-improve-llm", models["self_improve"],
            "--diagnose-llm", models["diagnose"], "--max-task-evals", "6", "--initial-evals", "2", "--seed", "1",
            "--run-dir", str(tmp / f"run-{executor}"), "--set", "search.initial_expansions=1"]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"hgm run --executor {executor} failed:\n{done.stderr[-3000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slots", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--job-s", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=8, help="jobs per slot")
    p.add_argument("--ray", action="store_true", help="also on a one-machine Ray instance")
    p.add_argument("--ray-slots", type=int, nargs="+", default=[4, 8])
    p.add_argument("--hgm-run", action="store_true", help="also time a small hgm run on local and ray")
    a = p.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; job {a.job_s:g} s, "
          f"{a.rounds} jobs per slot, SQLite store (synchronous=FULL)")
    print(f"{'executor':8} {'slots':>5} {'jobs':>5} {'wall s':>7} {'jobs/s':>7} {'head ms/job':>11} {'busy':>6} "
          f"{'work/window':>11}")
    plan = [("local", n) for n in a.slots] + ([("ray", n) for n in a.ray_slots] if a.ray else [])
    for name, n in plan:
        r = measure(n, a.job_s, a.rounds, name)
        print(f"{name:8} {n:5d} {r['jobs']:5.0f} {r['wall_s']:7.1f} {r['jobs_per_s']:7.1f} "
              f"{r['head_ms_per_job']:11.2f} {r['busy']:6.1%} {r['work']:11.1%}", flush=True)
    if a.hgm_run:
        with tempfile.TemporaryDirectory(prefix="hgm-bench-run-") as tmp:
            for name in ("local", "ray"):
                print(f"hgm run (3 python tasks, budget 6, 2 workers) on {name}: "
                      f"{hgm_run_wall(name, Path(tmp)):.1f} s wall", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
