"""The asynchronous search: W workers over injected `expand` / `evaluate` callables.

Each worker runs one decision at a time on the latest state (in-flight work counted), records
its start in the run store, runs it outside the lock, and records the finish. The store is the
truth: on resume the tree and its counters are rebuilt from it. The policies and the clade
counters live in hgm/policies.py (re-exported here).
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hgm.config import SearchConfig
from hgm.errors import UserError
from hgm.policies import (
    COUNTED,
    POLICIES,
    Agent,
    DGMPolicy,
    GreedyPolicy,
    HGMPolicy,
    Policy,
    RandomPolicy,
    Tree,
    lower_bounds,
    make_policy,
)
from hgm.domain import EvalOutcome, EvalStatus, ExpansionOutcome, ExpansionStatus
from hgm.memory_store import MemoryStore
from hgm.store import RunStore

__all__ = [
    "POLICIES",
    "Agent",
    "DGMPolicy",
    "Evaluate",
    "EvaluateFn",
    "Expand",
    "ExpandFn",
    "GreedyPolicy",
    "HGMPolicy",
    "InfraErrorLimit",
    "Policy",
    "Progress",
    "RandomPolicy",
    "Search",
    "SearchResult",
    "Tree",
    "lower_bounds",
    "make_policy",
]

ExpandFn = Callable[[int, int], ExpansionOutcome]
"""expand(parent_id, expansion_id) -> ExpansionOutcome"""
EvaluateFn = Callable[[int, str, int], EvalOutcome]
"""evaluate(node_id, task_id, eval_id) -> EvalOutcome"""


@dataclass(frozen=True)
class Expand:
    parent_id: int
    expansion_id: int


@dataclass(frozen=True)
class Evaluate:
    node_id: int
    task_id: str
    eval_id: int


WAIT = "wait"
"""Nothing to start now, but work in flight may change that (budget freed by an infra error)."""


@dataclass(frozen=True)
class Progress:
    """A snapshot for live displays."""

    phase: str
    agents: int
    expansions_in_flight: int
    failed_expansions: int
    evals_done: int
    evals_budget: int
    evals_in_flight: int
    infra_errors: int
    best_agent: int
    best_successes: int
    best_failures: int
    best_lower_bound: float


@dataclass(frozen=True)
class SearchResult:
    final_agent: int
    completed: bool
    """False when stop() ended the search before its budget was spent."""
    evals_done: int


class InfraErrorLimit(UserError):
    """Too many infra errors in a row: the harness, not the agents, is broken."""


class Search:
    """W workers, each running one decision at a time on the latest state, over a run store."""

    def __init__(self, store: RunStore | MemoryStore, config: SearchConfig, tasks: list[str],
                 expand: ExpandFn, evaluate: EvaluateFn,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        if not tasks or len(set(tasks)) != len(tasks):
            raise UserError("the search needs a non-empty list of distinct task ids")
        self.store, self.config, self.tasks = store, config, tasks
        self._expand, self._evaluate, self.on_progress = expand, evaluate, on_progress
        self.policy = make_policy(config)
        self.rng = np.random.default_rng(config.seed)
        self.search_budget = config.max_task_evals - config.finalists * config.finalist_evals
        if self.search_budget < 1:
            raise UserError("search.finalists * search.finalist_evals leaves no budget for the search; "
                            "raise search.max_task_evals")
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._fatal: BaseException | None = None
        self._consecutive_infra = 0
        self.infra_errors = 0
        self.tree, self._root_attempts = self._rebuild()
        saved = store.get_meta("finalists")
        self.finalists = {int(k): v for k, v in json.loads(saved).items()} if saved else None

    def run(self) -> SearchResult:
        """Search until the budget is spent, stop() is called or a worker hits a bug / the infra limit."""
        if self.config.workers == 1:
            self._worker()
        else:
            threads = [threading.Thread(target=self._worker, daemon=True, name=f"hgm-worker-{i}")
                       for i in range(self.config.workers)]
            for th in threads:
                th.start()
            try:
                for th in threads:
                    th.join()
            except KeyboardInterrupt:  # no new work; work in flight is abandoned if the process exits
                self.stop()
                raise
        if self._fatal is not None:
            raise self._fatal
        final = self.final_agent()
        completed = not self._stop.is_set()
        if completed:
            self.store.set_meta("final_agent", str(final))
        return SearchResult(final, completed, self.tree.evals_done)

    def final_agent(self) -> int:
        """The policy's best agent; once finalists were re-evaluated, the best of them."""
        with self._cond:
            ranked = self.policy.rank(self.tree)
            return next(i for i in ranked if self.finalists is None or i in self.finalists)

    def stop(self) -> None:
        """Start no new work; work in flight finishes (or is abandoned if the process exits)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def _worker(self) -> None:
        try:
            while True:
                with self._cond:
                    while (job := self._next_job()) == WAIT:
                        self._cond.wait()
                if job is None:
                    return
                self._finish(job, self._call(job))
        except BaseException as e:  # noqa: BLE001 - a bug: stop everybody and re-raise it from run()
            with self._cond:
                self._fatal = self._fatal or e
                self._cond.notify_all()

    def _next_job(self) -> Expand | Evaluate | str | None:
        """The decision, made under the lock; its start is recorded before the lock is released."""
        t, cfg = self.tree, self.config
        if self._stop.is_set() or self._fatal is not None:
            return None
        if self.finalists is None and t.evals_done + t.evals_in_flight >= self.search_budget:
            if t.evals_in_flight:
                return WAIT
            if not cfg.finalists:
                return None
            self._start_finalists()
        if self.finalists is not None:
            return self._finalist_job()
        root = t.agents[t.root_id]
        if root.evals + root.evals_in_flight < cfg.initial_evals and len(root.claimed_tasks) < t.n_tasks:
            return self._start_eval(root)
        if self._root_attempts < cfg.initial_expansions:
            return self._start_expand(root.id)
        tau = self.policy.temperature(self.search_budget, t.evals_done + t.evals_in_flight)
        candidates = t.evaluable()
        if not candidates or self.policy.should_expand(t):
            return self._start_expand(self.policy.choose_parent(t, self.rng, tau))
        return self._start_eval(t.agents[self.policy.choose_agent(candidates, self.rng, tau)])

    def _call(self, job: Expand | Evaluate) -> ExpansionOutcome | EvalOutcome:
        """The one place that turns any exception of an expansion / evaluation into infra_error."""
        try:
            if isinstance(job, Expand):
                return self._expand(job.parent_id, job.expansion_id)
            return self._evaluate(job.node_id, job.task_id, job.eval_id)
        except Exception as e:  # noqa: BLE001 - failures are data at this one boundary
            error = {"error_type": type(e).__name__, "error": traceback.format_exc()}
            if isinstance(job, Expand):
                return ExpansionOutcome(ExpansionStatus.INFRA_ERROR, **error)
            return EvalOutcome(EvalStatus.INFRA_ERROR, **error)

    def _finish(self, job: Expand | Evaluate, outcome: ExpansionOutcome | EvalOutcome) -> None:
        t = self.tree
        with self._cond:
            if isinstance(job, Expand):
                assert isinstance(outcome, ExpansionOutcome), f"expand returned {outcome!r}"
                child = self.store.finish_expansion(job.expansion_id, outcome)
                t.agents[job.parent_id].expansions_in_flight -= 1
                t.expansions_in_flight -= 1
                if child is not None:
                    t.add_agent(child, job.parent_id, outcome.commit)
                elif outcome.status == ExpansionStatus.FAILED:
                    t.failed_expansions += 1
                elif job.parent_id == t.root_id:
                    self._root_attempts -= 1  # infra error: the initial expansion is redone
            else:
                assert isinstance(outcome, EvalOutcome), f"evaluate returned {outcome!r}"
                self.store.finish_evaluation(job.eval_id, outcome)
                agent = t.agents[job.node_id]
                agent.evals_in_flight -= 1
                t.evals_in_flight -= 1
                if outcome.status in COUNTED:
                    t.record(job.node_id, outcome.status == EvalStatus.SOLVED)
                else:
                    agent.claimed_tasks.discard(job.task_id)  # infra error: the pair may be retried
            self._count_infra(outcome)
            snapshot = self.snapshot() if self.on_progress else None
            self._cond.notify_all()
        if snapshot is not None and self.on_progress is not None:
            self.on_progress(snapshot)

    def _count_infra(self, outcome: ExpansionOutcome | EvalOutcome) -> None:
        if outcome.status != "infra_error":
            self._consecutive_infra = 0
            return
        self.infra_errors += 1
        self._consecutive_infra += 1
        limit = self.config.max_consecutive_infra_errors
        if self._consecutive_infra >= limit and self._fatal is None:
            last = (outcome.error or "").strip().splitlines()[-1:] or [""]
            self._fatal = InfraErrorLimit(
                f"{limit} infra errors in a row (last: {outcome.error_type}: {last[0]}). The harness cannot "
                "run agents; fix the cause (try `hgm doctor`), then resume the run.")

    def _start_eval(self, agent: Agent) -> Evaluate:
        t = self.tree
        assert t.evals_done + t.evals_in_flight < self.config.max_task_evals
        free = [x for x in self.tasks if x not in agent.claimed_tasks]
        at_random = self.rng.random() < self.config.eval_random_level
        task = free[int(self.rng.integers(len(free)))] if at_random else free[0]
        eval_id = self.store.start_evaluation(agent.id, task)
        agent.claimed_tasks.add(task)
        agent.evals_in_flight += 1
        t.evals_in_flight += 1
        return Evaluate(agent.id, task, eval_id)

    def _start_expand(self, parent_id: int) -> Expand:
        expansion_id = self.store.start_expansion(parent_id)
        self.tree.agents[parent_id].expansions_in_flight += 1
        self.tree.expansions_in_flight += 1
        if parent_id == self.tree.root_id:
            self._root_attempts += 1
        return Expand(parent_id, expansion_id)

    def _start_finalists(self) -> None:
        top = self.policy.rank(self.tree)[: self.config.finalists]
        self.finalists = {i: self.tree.agents[i].evals + self.config.finalist_evals for i in top}
        self.store.set_meta("finalists", json.dumps(self.finalists))

    def _finalist_job(self) -> Evaluate | str | None:
        assert self.finalists is not None
        for agent_id, target in self.finalists.items():
            a = self.tree.agents[agent_id]
            if a.evals + a.evals_in_flight < target and len(a.claimed_tasks) < self.tree.n_tasks:
                return self._start_eval(a)
        return WAIT if self.tree.evals_in_flight else None

    def _rebuild(self) -> tuple[Tree, int]:
        """The tree and its counters from the store (resume = reopen)."""
        t = Tree(len(self.tasks))
        known = set(self.tasks)
        for n in self.store.nodes():
            t.add_agent(n.id, n.parent_id, n.commit)
        if t.root_id < 0:
            raise ValueError("the run store has no root agent; add it with store.add_node(None, commit)")
        for e in self.store.evaluations():
            if e.status == EvalStatus.IN_FLIGHT:
                raise ValueError("the run store has work in flight; open it writable first (that resets it)")
            if e.status in COUNTED:
                if e.task_id not in known:
                    raise UserError(f"the run evaluated task {e.task_id!r}, which is not in this task list; "
                                    "resume with the run's own benchmark settings")
                t.agents[e.node_id].claimed_tasks.add(e.task_id)
                t.record(e.node_id, e.status == EvalStatus.SOLVED)
        root_attempts = 0
        for x in self.store.expansions():
            if x.status == ExpansionStatus.IN_FLIGHT:
                raise ValueError("the run store has work in flight; open it writable first (that resets it)")
            t.failed_expansions += x.status == ExpansionStatus.FAILED
            root_attempts += x.parent_id == t.root_id and x.status != ExpansionStatus.INFRA_ERROR
        return t, root_attempts

    def snapshot(self) -> Progress:
        """Progress now (safe to call from any thread)."""
        with self._cond:
            t = self.tree
            best = t.agents[self.final_agent()]
            bound = float(lower_bounds([best], self.config.final_quantile)[0])
            phase = "finalists" if self.finalists is not None else "search"
            return Progress(phase, len(t.agents), t.expansions_in_flight, t.failed_expansions, t.evals_done,
                            self.config.max_task_evals, t.evals_in_flight, self.infra_errors, best.id,
                            best.own_successes, best.own_failures, bound)
