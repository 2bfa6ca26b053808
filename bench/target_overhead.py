"""Harness time per target evaluation beyond the entry's and the scorer's own time, per backend.

    python bench/target_overhead.py [--repeat 10] [--backends bwrap,docker] [--example char-lm]

One evaluation = TargetBenchmark.evaluate_node (copy of the node's directory, snapshot before and
after, the entry in the sandbox, declared outputs copied, the scorer in a sandbox of its own, JSON
parsed). The entry's and the scorer's own time is what the same two commands take run bare on the
host (subprocess, same environment variables, no sandbox); the overhead is the difference, median
over --repeat runs. Default target: a trivial one (the entry writes one file, the scorer prints a
score), so the overhead is not hidden in noise; --example char-lm uses examples/char-lm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hgm.benchmarks.target.benchmark import TargetBenchmark  # noqa: E402
from hgm.benchmarks.target.spec import load_target  # noqa: E402
from hgm.errors import SandboxUnavailable  # noqa: E402
from hgm.sandbox import get_sandbox  # noqa: E402
from hgm.sandbox.base import Limits  # noqa: E402

ENTRY = "import os; open(os.path.join(os.environ['HGM_OUTPUT_DIR'], 'out.txt'), 'w').write('x')"
SCORER = "print('{\"score\": 1.0}')"


def trivial_target(root: Path) -> Path:
    for d in ("target", "scorer", "hidden"):
        (root / d).mkdir(parents=True)
    (root / "target" / "target.yaml").write_text(json.dumps({
        "entry": ["python3", "-c", ENTRY], "outputs": ["out.txt"], "cases": [{"id": "c1"}],
        "scorer": {"command": ["python3", "-c", SCORER], "dir": "../scorer", "hidden": "../hidden"}}))
    return root / "target"


def bare(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env={"PATH": os.environ["PATH"], **env}, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(target: Path, backend: str, repeat: int) -> dict[str, float]:
    spec = load_target(target)
    bench = TargetBenchmark(spec)
    case = bench.tasks()[0]
    sandbox = get_sandbox(backend)
    totals, owns = [], []
    for _ in range(repeat + 1):  # the first run warms caches (venvs, images) and is dropped
        with tempfile.TemporaryDirectory() as tmp:
            log, out = Path(tmp) / "log", Path(tmp) / "out"
            log.mkdir()
            start = time.perf_counter()
            result = bench.evaluate_node(target, case, sandbox=sandbox, limits=Limits(), log_dir=log, llm_env={},
                                         llm_mounts=[])
            total = time.perf_counter() - start
            if result.score is None:
                raise RuntimeError(f"the evaluation did not score: {result.detail[:300]}")
            code = Path(tmp) / "code"
            shutil.copytree(target, code)
            out.mkdir()
            env = {"HGM_OUTPUT_DIR": str(out), "HGM_CASE": json.dumps(case.fields), "HGM_CASE_ID": case.id}
            own = bare([a.format_map(case.fields) for a in spec.entry], code, env)
            scorer_env = {"HGM_OUTPUTS_DIR": str(out), "HGM_HIDDEN_DIR": str(spec.scorer.hidden or ""), **env,
                          "HGM_ENTRY_SECONDS": "0"}
            own += bare(spec.scorer.command, spec.scorer.dir, scorer_env)
        totals.append(total)
        owns.append(own)
    totals, owns = totals[1:], owns[1:]
    over = [t - o for t, o in zip(totals, owns, strict=True)]
    return {"evaluation_s": statistics.median(totals), "own_s": statistics.median(owns),
            "overhead_s": statistics.median(over), "overhead_max_s": max(over)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--backends", default="bwrap,docker")
    ap.add_argument("--example", choices=["char-lm", "qa-agent"], default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        target = REPO / "examples" / args.example / "target" if args.example else trivial_target(Path(tmp))
        for backend in args.backends.split(","):
            try:
                r = measure(target, backend, args.repeat)
            except (SandboxUnavailable, RuntimeError) as e:
                print(f"{backend}: not measured ({e})")
                continue
            print(
                f"{backend}: evaluation {r['evaluation_s']:.3f} s, entry+scorer bare {r['own_s']:.3f} s, "
                f"harness overhead {r['overhead_s']:.3f} s (median of {args.repeat}; max {r['overhead_max_s']:.3f} s)"
            )


if __name__ == "__main__":
    main()
