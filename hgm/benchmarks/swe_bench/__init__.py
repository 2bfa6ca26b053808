"""SWE-bench (Verified, Lite, full, or your own task suite), graded by the official `swebench` package.

    bench = SWEBenchBenchmark.open("verified")          # or a .jsonl/.parquet file, or a task repo dir
    task = bench.task("django__django-11099")
    ws = bench.make_workspace(task, dest)                # /testbed's code at base_commit, one commit
    env = bench.agent_environment(task, sandbox)         # the instance image's sandbox, /testbed, PATH
    result = bench.score(task, ws, sandbox=sandbox, log_dir=..., timeout_s=1800)

Modules: dataset (instances, subsets), environment (images, testbeds, root filesystems, per-task
sandboxes), workspace (the agent's repository, its patch), scoring (apply, eval script, grade),
validate (gold patches solved, unpatched bases not). `swebench` and `datasets` are imported
lazily: they are the optional extra `hgm[swe-bench]`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from hgm.benchmarks import AgentEnvironment, TaskScore, TaskWorkspace
from hgm.benchmarks.swe_bench.dataset import SWEBenchTask, load_instances, subset_ids
from hgm.benchmarks.swe_bench.environment import TESTBED, Environments
from hgm.errors import UserError
from hgm.sandbox.base import Limits, Sandbox

DESCRIPTION = ("real GitHub issues of Python repositories (SWE-bench): the repository is at /testbed at the "
               "commit the issue was filed against, and the repository's own tests, hidden from the agent, "
               "decide whether the issue is resolved")


@dataclass
class SWEBenchBenchmark:
    dataset: str
    split: str = "test"
    envs: Environments = field(default_factory=Environments)
    name: str = "swe-bench"
    _tasks: dict[str, SWEBenchTask] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, dataset: str, split: str = "test", *, build_base: str | None = None) -> SWEBenchBenchmark:
        bench = cls(dataset, split, Environments(base=build_base))
        bench.all_tasks()  # errors now (missing extra, unreadable dataset), not in the first evaluation
        return bench

    def all_tasks(self) -> dict[str, SWEBenchTask]:
        with self._lock:
            if self._tasks is None:
                self._tasks = {t.id: t for t in load_instances(self.dataset, self.split)}
            return self._tasks

    def tasks(self, subset: str = "all") -> list[SWEBenchTask]:
        every = self.all_tasks()
        ids = subset_ids(subset)
        if ids is None:
            return list(every.values())
        missing = [i for i in ids if i not in every]
        if missing:
            raise UserError(f"subset {subset!r} names {len(missing)} instances missing from the dataset "
                            f"{self.dataset!r} (e.g. {', '.join(missing[:3])}); the paper's subsets come from "
                            "SWE-bench Verified (--dataset verified)")
        return [every[i] for i in ids]

    def task(self, task_id: str) -> SWEBenchTask:
        every = self.all_tasks()
        if task_id not in every:
            close = [t for t in every if task_id and task_id.split("-")[0] in t][:5]
            raise UserError(f"unknown SWE-bench instance {task_id!r} in {self.dataset!r}; ids look like "
                            "django__django-11099" + (f"; did you mean {', '.join(close)}?" if close else "")
                            + " (`hgm benchmark list swe-bench` shows the subsets)")
        return every[task_id]

    def make_workspace(self, task: SWEBenchTask, dest: Path) -> TaskWorkspace:
        from hgm.benchmarks.swe_bench.workspace import make_workspace

        return make_workspace(task.id, self.envs.get(task, backend=""), dest)

    def agent_environment(self, task: SWEBenchTask, sandbox: Sandbox) -> AgentEnvironment:
        env = self.envs.get(task, backend=sandbox.name)
        return AgentEnvironment(self.envs.sandbox(env, sandbox), workdir=TESTBED, path=env.path)

    def score(self, task: SWEBenchTask, agent_workspace: Path | TaskWorkspace, *, sandbox: Sandbox,
              log_dir: Path, timeout_s: float, limits: Limits | None = None) -> TaskScore:
        from hgm.benchmarks.swe_bench.scoring import score

        return score(task, agent_workspace, sandbox=sandbox, envs=self.envs, log_dir=log_dir, timeout_s=timeout_s,
                     limits=limits)

    def shutdown(self, timeout: float = 10.0) -> int:
        """Shut down the instance environments' sandboxes (their containers, bwrap process trees)."""
        return self.envs.shutdown(timeout)


__all__ = ["DESCRIPTION", "SWEBenchBenchmark", "SWEBenchTask"]
