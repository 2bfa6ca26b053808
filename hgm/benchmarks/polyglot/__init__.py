"""Aider's Polyglot benchmark (225 Exercism exercises in C++, Go, Java, JavaScript, Python, Rust).

    bench = PolyglotBenchmark.open(path_or_None)     # --from PATH, else the fetched copy
    task = bench.task("python__beer-song")
    ws = bench.make_workspace(task, dest)             # git repo the agent edits; ws.base_commit
    result = bench.score(task, ws, sandbox=..., log_dir=..., timeout_s=180)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hgm.benchmarks import AgentEnvironment, TaskScore, TaskWorkspace
from hgm.benchmarks.polyglot.loader import SUBSETS, PolyglotTask, load_tasks, resolve_root, subset_ids
from hgm.benchmarks.polyglot.scoring import score
from hgm.benchmarks.polyglot.workspace import make_workspace
from hgm.errors import UserError
from hgm.sandbox.base import Limits, Sandbox

DESCRIPTION = ("Exercism exercises in Python, Rust, Go, JavaScript, Java and C++; hidden unit tests decide "
               "whether a task is solved")


@dataclass(frozen=True)
class PolyglotBenchmark:
    root: Path
    name: str = "polyglot"

    @classmethod
    def open(cls, path: Path | None = None) -> PolyglotBenchmark:
        """The tree at `path`, else the copy `hgm benchmark fetch polyglot` made (UserError if none)."""
        return cls(resolve_root(path))

    def tasks(self, subset: str = "all") -> list[PolyglotTask]:
        every = load_tasks(self.root)
        ids = subset_ids(subset)
        if ids is None:
            return list(every.values())
        missing = [i for i in ids if i not in every]
        if missing:
            raise UserError(f"subset {subset!r} names tasks missing from {self.root}: {', '.join(missing[:5])}")
        return [every[i] for i in ids]

    def task(self, task_id: str) -> PolyglotTask:
        every = load_tasks(self.root)
        if task_id not in every:
            close = [t for t in every if task_id and task_id.split("__")[-1] in t][:5]
            raise UserError(
                f"unknown Polyglot task {task_id!r}: ids look like python__beer-song"
                + (f"; did you mean {', '.join(close)}?" if close else "")
                + " (`hgm benchmark list` shows the subsets)"
            )
        return every[task_id]

    def make_workspace(self, task: PolyglotTask, dest: Path) -> TaskWorkspace:
        return make_workspace(task, dest)

    def agent_environment(self, task: PolyglotTask, sandbox: Sandbox) -> AgentEnvironment:
        return AgentEnvironment(sandbox)

    def score(self, task: PolyglotTask, agent_workspace: Path | TaskWorkspace, *, sandbox: Sandbox,
              log_dir: Path, timeout_s: float, limits: Limits | None = None) -> TaskScore:
        return score(task, agent_workspace, sandbox=sandbox, log_dir=log_dir, timeout_s=timeout_s, limits=limits)

    def shutdown(self, timeout: float = 10.0) -> int:
        """Nothing to end: Polyglot runs in the run's own sandbox."""
        return 0


__all__ = ["DESCRIPTION", "SUBSETS", "PolyglotBenchmark", "PolyglotTask", "make_workspace", "score"]
