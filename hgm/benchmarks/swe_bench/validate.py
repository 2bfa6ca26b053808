"""`hgm benchmark validate swe-bench`: every gold patch must be resolved, every unpatched base not.

Runs through the same `run_eval` as scoring (same environment, same apply chain, same eval script
and grading), so a green validation means the scorer can tell right from wrong on this machine
and backend. The "empty" check runs the tests on the untouched base (as Polyglot's stub check
does), which is what shows the FAIL_TO_PASS tests really fail there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hgm.benchmarks import run_checks
from hgm.benchmarks.swe_bench.dataset import SWEBenchTask
from hgm.benchmarks.swe_bench.environment import Environments
from hgm.benchmarks.swe_bench.scoring import EvalRun, run_eval
from hgm.domain import EvalStatus
from hgm.sandbox.base import Sandbox


@dataclass(frozen=True)
class Check:
    task: SWEBenchTask
    kind: str
    """"gold" or "empty"."""
    run: EvalRun

    @property
    def status(self) -> EvalStatus:
        return self.run.status

    @property
    def seconds(self) -> float:
        return self.run.timings.get("eval_s", 0.0)

    @property
    def output_path(self) -> Path | None:
        return self.run.output_path

    @property
    def problem(self) -> str | None:
        status = self.run.status
        if status is EvalStatus.INFRA_ERROR:
            return f"infra error: {self.run.detail}"
        if self.kind == "gold" and status is not EvalStatus.SOLVED:
            return f"gold patch not resolved: {self.run.detail}"
        if self.kind == "empty" and status is EvalStatus.SOLVED:
            return f"unpatched base resolves the instance: {self.run.detail}"
        return None


def validate(tasks: list[SWEBenchTask], *, sandbox: Sandbox, envs: Environments, log_dir: Path, timeout_s: float,
             jobs: int = 1, on_done: Callable[[Check], None] = lambda check: None) -> list[Check]:
    """Gold and empty runs of each task; logs under log_dir/<task>/<kind>/."""

    def one(task: SWEBenchTask, kind: str) -> Check:
        patch = task.instance["patch"] if kind == "gold" else ""
        return Check(task, kind, run_eval(task, patch, sandbox=sandbox, envs=envs, log_dir=log_dir / task.id / kind,
                                          timeout_s=timeout_s))

    work = [(t, k) for t in tasks for k in ("gold", "empty")]
    return sorted(run_checks(work, one, jobs=jobs, on_done=on_done), key=lambda c: (c.task.id, c.kind))


@dataclass
class RepoSummary:
    repo: str
    tasks: int = 0
    gold_solved: int = 0
    empty_unsolved: int = 0
    unexpected: int = 0
    test_s: float = 0.0
    slowest: tuple[float, str] = (0.0, "")


def summarize(checks: list[Check]) -> list[RepoSummary]:
    rows: dict[str, RepoSummary] = {}
    for c in checks:
        row = rows.setdefault(c.task.repo, RepoSummary(c.task.repo))
        row.tasks += c.kind == "gold"
        row.gold_solved += c.kind == "gold" and c.run.status is EvalStatus.SOLVED
        row.empty_unsolved += c.kind == "empty" and c.run.status is EvalStatus.FAILED
        row.unexpected += c.problem is not None
        row.test_s += c.seconds
        row.slowest = max(row.slowest, (c.seconds, f"{c.task.id} ({c.kind})"))
    return sorted(rows.values(), key=lambda r: r.repo)
