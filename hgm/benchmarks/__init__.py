"""The benchmark interface: tasks, task workspaces, agent environments, scoring.

Which benchmarks there are, and everything else about each one asked for by name (commands,
subsets, doctor checks), is in the registry: hgm/benchmarks/registry.py.

A benchmark hands out `Task`s, builds the git workspace an agent works in (`make_workspace`),
says where the agent runs on a task (`agent_environment`: the sandbox, where the workspace
appears inside it, the PATH), and scores what the agent left there (`score`). Scoring never
trusts the agent's workspace for anything but the solution: tests come from the benchmark itself
and run in a fresh sandbox. `describe(name)` is the benchmark's part of the self-improvement prompts
(its entry's description: what the tasks are and what decides them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from hgm.domain import ErrorType, EvalStatus, VerdictFlag

if TYPE_CHECKING:
    from hgm.config import BenchmarkConfig
    from hgm.sandbox.base import Limits, Mount, Sandbox


@dataclass(frozen=True)
class TaskScore:
    status: EvalStatus
    """solved, failed, empty_patch or infra_error (never in_flight)."""
    test_s: float
    """Seconds the test command ran (0 when it did not run)."""
    output_path: Path | None
    """Log file with the test command's output (None when nothing ran)."""
    patch: str
    """`git diff` of the solution files against the task's base commit."""
    detail: str = ""
    """Why, in short: failing tests, missing toolchain and its fix, ..."""
    error_type: ErrorType | None = None
    """For infra_error: what broke (ToolchainMissing, DepsMissing, SandboxUnavailable, ...)."""
    flag: VerdictFlag | None = None
    """Set (with status failed) when the test run looks forged: see hgm.domain.VerdictFlag."""
    score: float | None = None
    """Status scored: the score in [0, 1] (targets)."""
    run_s: float | None = None
    """Seconds the node itself ran (a target's entry command), when the benchmark runs it."""

    @property
    def infra_error(self) -> bool:
        return self.status is EvalStatus.INFRA_ERROR

    @property
    def error(self) -> str:
        return self.detail if self.infra_error else ""


@dataclass(frozen=True)
class TaskWorkspace:
    """The git workspace an agent works in; `base_commit` is its one initial commit."""

    path: Path
    base_commit: str

    def __fspath__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class AgentEnvironment:
    """Where the agent runs on one task."""

    sandbox: Sandbox
    """The sandbox to run in (Polyglot: the run's own; SWE-bench: the instance image's)."""
    workdir: str | None = None
    """Where the workspace appears inside the sandbox (None: at its host path)."""
    path: str | None = None
    """PATH inside, the task's own toolchain first (None: the sandbox's default)."""


class Task(Protocol):
    id: str
    language: str
    problem_statement: str


class Benchmark(Protocol):
    name: str

    def tasks(self, subset: str = "all") -> list[Task]:
        """Tasks of a named subset, in a stable order. Unknown subset: UserError."""
        ...

    def task(self, task_id: str) -> Task:
        """One task by id. Unknown id: UserError saying how to list the ids."""
        ...

    def make_workspace(self, task: Task, dest: Path) -> TaskWorkspace:
        """Create the agent's git workspace at `dest` (must not exist), with one base commit."""
        ...

    def agent_environment(self, task: Task, sandbox: Sandbox) -> AgentEnvironment:
        """Where the agent runs on `task`, given the run's sandbox backend."""
        ...

    def score(
        self, task: Task, agent_workspace: Path | TaskWorkspace, *, sandbox: Sandbox, log_dir: Path, timeout_s: float
    ) -> TaskScore:
        """Test the agent's solution-file changes against the benchmark's own tests."""
        ...

    def shutdown(self, timeout: float = 10.0) -> int:
        """End every sandbox the benchmark made for its tasks (SWE-bench: the instance environments'),
        as `Sandbox.shutdown` does; returns how many commands were running (the run's second Ctrl-C)."""
        ...


@runtime_checkable
class RunsNodes(Protocol):
    """A benchmark whose evaluation runs the node itself on the task (a target's entry command, then
    its scorer) instead of a coding agent on a workspace that `score` then tests."""

    uses_llm: bool
    """The node calls an LLM: it gets a gateway session (role downstream)."""

    def evaluate_node(self, node_dir: Path, task: Task, *, sandbox: Sandbox, limits: Limits, log_dir: Path,
                      llm_env: dict[str, str], llm_mounts: list[Mount]) -> TaskScore:
        """Run the node on `task` and score it; every failure is in the TaskScore, logs in `log_dir`."""
        ...


def get_benchmark(config: BenchmarkConfig) -> Benchmark:
    """The benchmark `config.name` names, opened by its registry entry (hgm/benchmarks/registry.py)."""
    from hgm.benchmarks.registry import entry

    return entry(config.name).open(config)


def check_subset(benchmark: str, subset: str) -> None:
    """UserError for a subset `benchmark` does not have, before any tree is resolved or dataset
    loaded (a typo must not wait for the Hub first)."""
    from hgm.benchmarks.registry import entry

    entry(benchmark).subset_ids(subset)


T = TypeVar("T")
C = TypeVar("C")


def run_checks(work: Iterable[tuple[T, str]], check: Callable[[T, str], C], *, jobs: int,
               on_done: Callable[[C], None]) -> list[C]:
    """`hgm benchmark validate`'s runs: check(task, kind) for each pair (a known-good and a
    known-bad solution per task), `jobs` at a time; on_done(result) as each one finishes."""
    done: list[C] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in as_completed([pool.submit(check, task, kind) for task, kind in work]):
            done.append(future.result())
            on_done(done[-1])
    return done


def describe(name: str) -> str:
    """What the benchmark's tasks are and what decides them (completes "the agent's tasks are ..." in
    the self-improvement prompts), without loading its tasks."""
    from hgm.benchmarks.registry import entry

    return entry(name).description
