"""SIGKILL a real `hgm run` (scripted LLM, bwrap sandboxes, the Python toolchain) at N random
moments, resuming it each time, then let it finish; check that nothing was lost or done twice.

A run directory gets one `hgm run` and then `hgm run --resume` after every kill (a run that
finishes before the kills are used up is followed by a new one). After each kill it prints:

  lost       results finished before the kill that are missing or changed after the next life
  alive      processes of the run (their command line or working directory is under the bench's
             directory: the agents, test runners and bwrap of the run) alive just before the kill
  orphans    those still alive 5 s after the kill (bwrap's --die-with-parent and the pid namespace
             should leave none)
  cgroups    job cgroups of the killed process still present (expected right after a SIGKILL: no
             code runs then); the next `hgm` start removes them, checked at the end, as are the
             temporary directories of killed runs (the bench gives the runs a TMPDIR of their own)

At the end of every finished run: pairs counted twice (an agent scored twice on one task), and
whether the budget was met exactly (counted evaluations == search.max_task_evals, final agent
named, every node's code in the archive).

Usage: python bench/crash_resume.py [--n 20] [--budget 24] [--workers 2] [--seed 0]
                                    [--kill-after 2 30] [--from PATH] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hgm.archive import Archive
from hgm.domain import EvalStatus, ExpansionStatus, MetaKey
from hgm.store import DB_NAME, RunStore

DEFAULT_TREE = Path(__file__).resolve().parents[2] / "shared" / "polyglot-benchmark"
TASKS = ["python__transpose", "python__beer-song", "python__proverb", "python__grep", "python__wordy",
         "python__pig-latin"]
SOLVED = ("transpose", "beer-song")
"""Tasks the scripted downstream model solves (with the reference solution); it gives up on the rest."""
COUNTED = (EvalStatus.SOLVED, EvalStatus.FAILED, EvalStatus.EMPTY_PATCH)
PLAN = {"log_summary": "The agent stopped without writing code.", "root_cause": "It does not insist on testing.",
        "improvement": "Run the tests before stopping.", "implementation": "Add a sentence to prompts.py.",
        "problem_statement": "Make the agent run the tests before it stops.", "title": "Run the tests first"}


def write_scripts(tree: Path, into: Path) -> dict[str, str]:
    into.mkdir(parents=True)
    price = {"input": 1.0, "output": 2.0}
    solve = []
    for name in SOLVED:
        meta = tree / "python" / "exercises" / "practice" / name
        statement = (meta / ".docs" / "instructions.md").read_text().splitlines()
        line = next(ln for ln in statement if len(ln) > 30 and not ln.startswith("#"))
        solve.append({"match": line[:40].replace("(", r"\(").replace(")", r"\)").replace(".", r"\."),
                      "content": "Writing the solution.", "tool_calls": [{"name": "editor", "arguments": {
                          "command": "create", "path": f"{name.replace('-', '_')}.py",
                          "file_text": (meta / ".meta" / "example.py").read_text()}}]})
    scripts = {
        "downstream": {"price": price, "rules": solve, "responses": [{"content": "Done."}]},
        "diagnose": {"price": price, "rules": [{"match": ".", "on": "any", "content": json.dumps(PLAN)}]},
        "self_improve": {
            "price": price,
            "rules": [
                {
                    "match": "Improve this coding agent",
                    "content": "Editing.",
                    "tool_calls": [
                        {
                            "name": "bash",
                            "arguments": {"command": "printf '\\n# lesson %s\\n' \"$(date +%s%N)\" >> prompts.py"},
                        }
                    ],
                }
            ],
            "responses": [{"content": "Done."}],
        },
    }
    models = {}
    for role, script in scripts.items():
        path = into / f"{role}.json"
        path.write_text(json.dumps(script))
        models[role] = f"scripted:{path}"
    return models


def finished(run: Path) -> dict[tuple, tuple]:
    """Every finished result (read-only): evaluation / expansion / node id -> what it says."""
    if not (run / DB_NAME).exists():
        return {}
    with RunStore.open(run, readonly=True) as s:
        out: dict[tuple, tuple] = {}
        for e in s.evaluations():
            if e.status != EvalStatus.IN_FLIGHT:
                out[("eval", e.id)] = (e.node_id, e.task_id, e.status, e.error_type)
        for x in s.expansions():
            if x.status != ExpansionStatus.IN_FLIGHT:
                out[("expansion", x.id)] = (x.parent_id, x.child_id, x.status, x.commit)
        for n in s.nodes():
            out[("node", n.id)] = (n.parent_id, n.commit)
    return out


def lost(before: dict[tuple, tuple], after: dict[tuple, tuple]) -> int:
    # an interrupted in-flight row becomes infra_error on resume: it was not finished before, so not here
    return sum(1 for key, value in before.items() if after.get(key) != value)


def ours(root: Path, skip: set[int]) -> list[int]:
    """Live processes whose command line or working directory is under `root`."""
    found, needle = [], str(root).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in skip:
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            cwd = os.readlink(proc / "cwd").encode()
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append(int(proc.name))
    return found


def cgroups_of(pid: int) -> list[Path]:
    return [d for d in Path("/sys/fs/cgroup").glob(f"**/hgm-{pid}-*") if d.is_dir()]


def check_finished_run(run: Path, budget: int) -> dict[str, object]:
    with RunStore.open(run, readonly=True) as s:
        counted = [(e.node_id, e.task_id) for e in s.evaluations() if e.status in COUNTED]
        nodes = s.nodes()
        final = s.get_meta(MetaKey.FINAL_AGENT)
        spent = s.llm.usage()
    archive = Archive.open(run / "archive")
    missing = [n.id for n in nodes if not n.commit or archive.resolve(f"node-{n.id}") != n.commit]
    return {"counted": len(counted), "twice": len(counted) - len(set(counted)), "final": final,
            "nodes": len(nodes), "nodes without code": len(missing), "usd": spent.known_cost_usd,
            "budget met": len(counted) == budget and final is not None and not missing}


@dataclass
class Totals:
    kills: int = 0
    lost: int = 0
    orphans: int = 0
    cgroups_after_kill: int = 0
    resume_failures: list[str] = field(default_factory=list)
    runs: list[dict[str, object]] = field(default_factory=list)
    killed_pids: list[int] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="SIGKILLs in all")
    parser.add_argument("--budget", type=int, default=24, help="search.max_task_evals of each run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kill-after", type=float, nargs=2, default=(2.0, 30.0), metavar=("MIN_S", "MAX_S"))
    parser.add_argument("--from", dest="tree", type=Path, default=DEFAULT_TREE)
    parser.add_argument("--keep", action="store_true", help="keep the bench directory")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="hgm-crashbench-"))
    (root / "tmp").mkdir()
    env = {**os.environ, "COLUMNS": "300", "TMPDIR": str(root / "tmp")}
    models = write_scripts(args.tree, root / "scripts")
    base = ["--tasks", ",".join(TASKS), "--from", str(args.tree), "--sandbox", "bwrap",
            "--downstream-llm", models["downstream"], "--self-improve-llm", models["self_improve"],
            "--diagnose-llm", models["diagnose"], "--max-task-evals", str(args.budget), "--initial-evals", "4",
            "--workers", str(args.workers), "--seed", str(args.seed), "--set", "search.initial_expansions=2",
            "--set", "sandbox.agent_timeout_s=240"]
    totals, run_no, life = Totals(), 0, 0
    run, fresh = root / "run0", True
    pending: dict[tuple, tuple] | None = None
    """What was on disk when the last life of `run` was killed: the next life must keep all of it."""
    print(f"bench directory {root}; {args.n} kills, budget {args.budget} task evaluations per run, "
          f"{args.workers} workers", flush=True)
    while True:
        life += 1
        argv = ["run", *base, "--run-dir", str(run)] if fresh else ["run", "--resume", str(run)]
        log_path = root / f"life{life}.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "hgm.cli", *argv], stdout=log, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
            last = totals.kills >= args.n
            wait = 3600.0 if last else rng.uniform(*args.kill_after)
            try:
                code: int | None = proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                code = None
                alive = len(ours(root, {os.getpid(), proc.pid}))  # shows the orphan check sees sandboxed processes
                killed_at = time.monotonic()
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        now = finished(run)
        if pending is not None:
            totals.lost += lost(pending, now)
        pending = None
        if code is None:  # killed
            totals.kills += 1
            totals.killed_pids.append(proc.pid)
            left = ours(root, {os.getpid()})
            while left and time.monotonic() < killed_at + 5:
                time.sleep(0.2)
                left = ours(root, {os.getpid()})
            cgroups = cgroups_of(proc.pid)
            totals.orphans += len(left)
            totals.cgroups_after_kill += len(cgroups)
            counted = sum(k[0] == "eval" and v[2] in COUNTED for k, v in now.items())
            committed = sum(k[0] == "expansion" and v[2] == ExpansionStatus.COMMITTED for k, v in now.items())
            print(f"kill {totals.kills:2} (life {life}): after {wait:4.1f} s; on disk {counted:2} counted evaluations, "
                  f"{committed} committed rewrites; {alive:3} processes of the run alive at the kill, orphans "
                  f"{len(left)}, cgroups left {len(cgroups)}", flush=True)
            fresh = not (run / DB_NAME).exists()
            if fresh:  # killed before its store existed: nothing to resume, start it anew
                shutil.rmtree(run, ignore_errors=True)
            else:
                pending = now
            continue
        if code != 0:
            totals.resume_failures.append(f"life {life} exited {code}: {log_path.read_text()[-800:]}")
            print(f"life {life} exited {code} (see {log_path})", flush=True)
            break
        result = check_finished_run(run, args.budget)
        totals.runs.append(result)
        print(f"run {run_no} finished (life {life}): {result}", flush=True)
        if last:
            break
        run_no += 1
        run, fresh = root / f"run{run_no}", True
    leftover_cgroups = sum(len(cgroups_of(pid)) for pid in totals.killed_pids)
    leftover_tmp = sorted(p.name for p in (root / "tmp").iterdir())
    print()
    print(f"kills (SIGKILL at random moments): {totals.kills}")
    print(f"results lost:                      {totals.lost}")
    print(f"pairs counted twice:               {sum(int(r['twice']) for r in totals.runs)}")
    print(f"sandbox processes left orphaned:   {totals.orphans}")
    print(f"cgroups left right after a kill:   {totals.cgroups_after_kill} (removed by the next start: "
          f"{leftover_cgroups} left at the end)")
    print(f"temporary directories left:        {len(leftover_tmp)} {leftover_tmp[:5] if leftover_tmp else ''}")
    print(f"runs finished:                     {len(totals.runs)}; budget met exactly in "
          f"{sum(bool(r['budget met']) for r in totals.runs)} of them")
    print(f"resume failures:                   {len(totals.resume_failures)}")
    for failure in totals.resume_failures:
        print("  " + failure.replace("\n", "\n  "))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
