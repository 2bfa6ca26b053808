"""How fast `hgm report` writes, and Chromium opens, the report of a 1,000-agent run.

Targets (issue 12): generated in <= 5 s, opens in the browser in <= 3 s. The run is a simulated
one written by `hgm simulate --run-dir` through the real scheduler and SQLite store (alpha = 1 so
the tree grows to ~1,000 agents within 1,300 evaluations). "Generated" is the wall time of the
`hgm report` command (Python start-up included); "opens" is from navigation start until the tree's
1,000 markers are drawn, in a fresh page of Debian's headless Chromium (tests/browser.py).

    python bench/report_speed.py [--budget 1300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=1300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from hgm.store import RunStore

    from browser import chromium, missing

    with tempfile.TemporaryDirectory(prefix="hgm-bench-report-") as tmp:
        run = Path(tmp) / "sim"
        hgm = [sys.executable, "-m", "hgm.cli"]
        subprocess.run(
            [
                *hgm,
                "simulate",
                "--run-dir",
                str(run),
                "--max-task-evals",
                str(args.budget),
                "--set",
                "search.alpha=1.0",
            ],
            check=True,
            capture_output=True,
        )
        with RunStore.open(run, readonly=True) as s:
            agents, evals = len(s.nodes()), len(s.evaluations())
        print(f"run: {agents} agents, {evals} evaluations (simulated, {run})")
        gen, cpu = [], []
        for _ in range(args.repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run([*hgm, "report", str(run)], check=True, capture_output=True)
            gen.append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        size = (run / "report.html").stat().st_size / 1e6
        print(f"hgm report: {statistics.median(gen):.2f} s median of {args.repeat} "
              f"({', '.join(f'{g:.2f}' for g in gen)}; CPU {statistics.median(cpu):.2f} s), {size:.1f} MB   "
              f"target <= 5 s   (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        if missing():
            print(f"browser: not measured ({missing()})")
            return
        opened, loaded = [], []
        with chromium() as browser:
            for _ in range(args.repeat):
                page = browser.new_page()  # type: ignore[attr-defined]
                t = time.perf_counter()
                page.goto((run / "report.html").as_uri(), wait_until="load")
                loaded.append(time.perf_counter() - t)
                page.wait_for_function(f"document.querySelectorAll('#tree .scatterlayer .point').length >= {agents}",
                                       polling="raf", timeout=60_000)
                opened.append(time.perf_counter() - t)
                page.close()
        print(f"chromium: tree with all {agents} agents drawn after {statistics.median(opened):.2f} s median "
              f"({', '.join(f'{o:.2f}' for o in opened)}); load event after {statistics.median(loaded):.2f} s   "
              f"target <= 3 s   (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
