"""SWE-bench evaluation overhead on the local instances (tests/data/swe_bench), per backend.

    python bench/swe_bench_overhead.py [--cold] [--repeat 3]

Per scored gold patch: container (or bwrap) start (an exec of `true` in the instance environment),
testbed copy, patch apply (start + the official apply chain), the eval script (start + test run),
grading (swebench's parser and report), against the instance's own test time (pytest's "in N s").
--cold first removes the local instance images, builds without the engine's layer cache and uses
an empty cache directory, then reports the time from there to the first finished SWE-bench
evaluation (image build from localhost/debian:bookworm, /testbed export, scoring); the base image
itself stays.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LOCAL = REPO / "tests" / "data" / "swe_bench"
BASE = "localhost/debian:bookworm"


def pytest_seconds(log: Path) -> float:
    found = re.findall(r"=+ .* in ([0-9.]+)s", log.read_text(errors="replace"))
    return float(found[-1]) if found else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="measure from no instance images and an empty cache")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backends", default="docker,bwrap")
    args = ap.parse_args()
    if args.cold:
        os.environ["HGM_CACHE_DIR"] = tempfile.mkdtemp(prefix="hgm-bench-cache-")

    from hgm.benchmarks.swe_bench import SWEBenchBenchmark
    from hgm.benchmarks.swe_bench.scoring import run_eval
    from hgm.sandbox import get_sandbox
    from hgm.sandbox.base import Limits

    bench = SWEBenchBenchmark.open(str(LOCAL), build_base=BASE)
    tasks = bench.tasks()
    if args.cold:
        import docker

        bench.envs.nocache = True  # every layer built again: apt packages, pytest, the sdist
        for t in tasks:
            with contextlib.suppress(docker.errors.ImageNotFound):
                bench.envs.client.images.remove(t.image, force=True)
        start = time.monotonic()
        first = tasks[0]
        run = run_eval(first, first.instance["patch"], sandbox=get_sandbox("docker"), envs=bench.envs,
                       log_dir=Path(tempfile.mkdtemp()) / "cold", timeout_s=900)
        print(f"cold start, docker: image build + testbed export + first evaluation of {first.id}: "
              f"{time.monotonic() - start:.1f} s ({run.status.value})")
        start = time.monotonic()
        bench.envs.get(first, backend="bwrap")
        print(f"cold start, bwrap: root filesystem export of the same image: {time.monotonic() - start:.1f} s")

    print(f"{'backend':8} {'instance':28} {'start':>6} {'copy':>6} {'apply':>6} {'eval':>6} {'tests':>6} "
          f"{'grade':>6} {'total':>6} {'overhead':>8}  (seconds, median of {args.repeat})")
    for backend in args.backends.split(","):
        sandbox = get_sandbox(backend)
        for task in tasks:
            env = bench.envs.get(task, backend=backend)
            box = bench.envs.sandbox(env, sandbox)
            rows: dict[str, list[float]] = {}
            for _ in range(args.repeat):
                t = time.monotonic()
                box.exec(["true"], cwd="/", env={"PATH": env.path}, timeout=60, limits=Limits())
                rows.setdefault("start", []).append(time.monotonic() - t)
                with tempfile.TemporaryDirectory() as tmp:
                    run = run_eval(task, task.instance["patch"], sandbox=sandbox, envs=bench.envs,
                                   log_dir=Path(tmp), timeout_s=900)
                    assert run.status.value == "solved", (task.id, run.detail)
                    for key in ("copy_testbed_s", "apply_s", "eval_s", "grade_s", "total_s"):
                        rows.setdefault(key, []).append(run.timings[key])
                    rows.setdefault("tests", []).append(pytest_seconds(Path(tmp) / "test_output.txt"))
            m = {k: statistics.median(v) for k, v in rows.items()}
            print(f"{backend:8} {task.id:28} {m['start']:6.2f} {m['copy_testbed_s']:6.2f} {m['apply_s']:6.2f} "
                  f"{m['eval_s']:6.2f} {m['tests']:6.2f} {m['grade_s']:6.3f} {m['total_s']:6.2f} "
                  f"{m['total_s'] - m['tests']:8.2f}")


if __name__ == "__main__":
    main()
