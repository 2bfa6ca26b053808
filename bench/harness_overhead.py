"""Harness overhead per Polyglot evaluation: time spent outside the test command itself.

For each sandbox backend (bwrap, none) and language, on one reference solution per language:
  workspace  make_workspace (copy, git init/add/commit) + writing the solution into it
  score      wall time of score(): reading the solution files back, diff, scoring copy, un-skip,
             sandbox run, log writing, clean-up
  exec       the sandboxed command's own duration (ExecResult.duration_s, sandbox start included)
  start      sandbox start alone: exec of `true` with the same kind of mounts (median)
  overhead   = workspace + (score - exec) + start       test = exec - start

Usage: python bench/harness_overhead.py [--from PATH] [--repeat 3] [--lang python ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from hgm.benchmarks.polyglot import PolyglotBenchmark
from hgm.benchmarks.polyglot.scoring import score
from hgm.benchmarks.polyglot.workspace import make_workspace
from hgm.sandbox import get_sandbox
from hgm.sandbox.base import Mount

TASKS = {
    "python": "python__beer-song", "go": "go__book-store", "javascript": "javascript__bottle-song",
    "rust": "rust__variable-length-quantity", "java": "java__sgf-parsing", "cpp": "cpp__all-your-base",
}
DEFAULT_TREE = Path(__file__).resolve().parents[2] / "shared" / "polyglot-benchmark"


def sandbox_start(box, tmp: Path, n: int = 5) -> float:
    work = tmp / "start"
    work.mkdir(exist_ok=True)
    runs = [box.exec(["true"], cwd=str(work), timeout=30, mounts=[Mount(work, str(work), read_only=False)]).duration_s
            for _ in range(n)]
    return statistics.median(runs)


def one(bench: PolyglotBenchmark, box, task_id: str, tmp: Path, start_s: float) -> dict[str, float]:
    task = bench.task(task_id)
    t0 = time.perf_counter()
    ws = make_workspace(task, Path(tempfile.mkdtemp(dir=tmp)) / "ws")
    for target, example in task.reference_files().items():
        (ws.path / target).write_bytes((task.path / example).read_bytes())
    t1 = time.perf_counter()
    result = score(task, ws, sandbox=box, log_dir=Path(tempfile.mkdtemp(dir=tmp)), timeout_s=300)
    t2 = time.perf_counter()
    assert result.status == "solved", (task_id, result.detail)
    return {"workspace": t1 - t0, "score": t2 - t1, "exec": result.test_s,
            "overhead": (t1 - t0) + (t2 - t1 - result.test_s) + start_s, "test": result.test_s - start_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="tree", type=Path, default=DEFAULT_TREE)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lang", action="append", choices=sorted(TASKS))
    parser.add_argument("--sandbox", action="append", choices=["bwrap", "docker", "none"])
    args = parser.parse_args()
    bench = PolyglotBenchmark.open(args.tree)
    print(f"{'sandbox':8} {'language':11} {'workspace':>9} {'score':>7} {'exec':>7} {'start':>6} "
          f"{'overhead':>8} {'test':>7}   (seconds, median of {args.repeat})")
    with tempfile.TemporaryDirectory(prefix="hgm-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        for backend in args.sandbox or ["bwrap", "none"]:
            box = get_sandbox(backend)
            start_s = sandbox_start(box, tmp)
            for lang in args.lang or list(TASKS):
                one(bench, box, TASKS[lang], tmp, start_s)  # warm-up (page cache, first compile)
                runs = [one(bench, box, TASKS[lang], tmp, start_s) for _ in range(args.repeat)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(f"{backend:8} {lang:11} {med['workspace']:9.3f} {med['score']:7.3f} {med['exec']:7.3f} "
                      f"{start_s:6.3f} {med['overhead']:8.3f} {med['test']:7.3f}", flush=True)


if __name__ == "__main__":
    main()
