"""The scheduler: decisions on the latest state, jobs to an executor, results committed exactly once.

One loop in the `hgm run` process owns the policy, the tree of counters and the run store. It
keeps at most as many jobs in flight as the executor has slots: it decides a job (in-flight work
counted), records it as dispatched in the store (row + dispatch attempt 1), submits it, and decides
the next one only after a result was committed. A result is committed in one transaction with the
closing of its dispatch, only while that dispatch is open (hgm/store.py); anything else - a
duplicate, a late result of an attempt that was redone or cut by its deadline - is dropped. A job
whose worker died is redone as the next attempt (up to `max_attempts`), never booked against the
agent; a job past its deadline is cancelled and booked infra_error. The store is the truth: on
resume the tree and its counters are rebuilt from it and work that was in flight is re-decided.

Spend on rewrites is bounded: an agent whose last `max_failed_rewrites_per_parent` rewrites failed
is no longer chosen as a parent; `max_consecutive_failed_rewrites` failed rewrites in a row stop the
run with `RewriteLimit`; when no agent can be evaluated and none can be rewritten the run ends with
`SearchExhausted` instead of spinning. The policies and the clade counters live in hgm/policies.py.

A person steers through the store (hgm/steering.py): at each decision the scheduler reads the
interventions added since the last one and hands the policy a view of the tree in which the agents
it must leave alone (vetoed, rejected, waiting for approval) can be neither evaluated nor rewritten;
a pinned agent is the parent of the next rewrites the policy decides. While paused, or when only a
person's approval could give it work, it holds: no new job, the loop waits and polls
(`Progress.held` says why) instead of ending.
"""

from __future__ import annotations

import copy
import json
import logging
import tarfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from hgm.baselines import BestOfNPolicy, DGMPaperPolicy, SICAPolicy
from hgm.config import SearchConfig, SteerConfig
from hgm.domain import (
    ErrorType,
    EvalOutcome,
    EvalStatus,
    ExpansionOutcome,
    ExpansionRow,
    ExpansionStatus,
    JobKind,
    MetaKey,
    success,
)
from hgm.errors import InfraErrorLimit, RewriteLimit, SearchExhausted, UserError
from hgm.executors import Delivery, Executor, JobKey
from hgm.policies import (
    WAIT,
    Agent,
    Decide,
    DGMPolicy,
    EvalStep,
    ExpandStep,
    FinalRule,
    GreedyPolicy,
    HGMPolicy,
    Policy,
    RandomPolicy,
    Tree,
    lower_bounds,
)
from hgm.policy_ga import GAPolicy
from hgm.steering import TIMEOUT_WHO, Action, Intervention, Steering
from hgm.store_protocol import Store

__all__ = [
    "POLICIES",
    "Decision",
    "Evaluate",
    "EvaluateFn",
    "Expand",
    "ExpandFn",
    "final_rule",
    "job_function",
    "make_policy",
    "Progress",
    "rebuild_tree",
    "Search",
    "SearchResult",
]

log = logging.getLogger("hgm.run.search")
HOLD_POLL_S = 0.5
"""While holding for a person with nothing in flight: how often the store is read again."""

POLICIES: dict[str, type[Policy]] = {p.name: p for p in (HGMPolicy, DGMPolicy, GreedyPolicy, RandomPolicy,
                                                         DGMPaperPolicy, SICAPolicy, BestOfNPolicy, GAPolicy)}
"""hgm, the selection-only ablations (dgm, greedy, random), the published baselines and the control."""


def final_rule(config: SearchConfig) -> FinalRule:
    """The run's final-agent rule: search.final_rule, or its policy's own."""
    return config.final_rule or POLICIES[config.policy].default_final_rule


def make_policy(config: SearchConfig, tasks: list[str] | None = None, stages: list[list[str]] | None = None) -> Policy:
    if config.policy not in POLICIES:
        raise UserError(f"unknown search policy {config.policy!r}; known: {', '.join(POLICIES)}")
    return POLICIES[config.policy](config, tasks, stages)

ExpandFn = Callable[[int, int], ExpansionOutcome]
"""expand(parent_id, expansion_id) -> ExpansionOutcome"""
EvaluateFn = Callable[[int, str, int], EvalOutcome]
"""evaluate(node_id, task_id, eval_id) -> EvalOutcome"""


@dataclass(frozen=True)
class Expand:
    """Decision: rewrite agent `parent_id` (expansion row `expansion_id`)."""

    parent_id: int
    expansion_id: int
    attempt: int = 1
    rewriter_id: int | None = None
    """The agent whose code rewrites the parent's (None: the parent itself)."""

    @property
    def key(self) -> JobKey:
        return JobKey(JobKind.EXPAND, self.expansion_id, self.attempt)


@dataclass(frozen=True)
class Evaluate:
    """Decision: evaluate agent `node_id` on `task_id` (evaluation row `eval_id`)."""

    node_id: int
    task_id: str
    eval_id: int
    attempt: int = 1

    @property
    def key(self) -> JobKey:
        return JobKey(JobKind.EVAL, self.eval_id, self.attempt)


Decision = Expand | Evaluate


def job_function(expand: ExpandFn, evaluate: EvaluateFn) -> Callable[[object], object]:
    """A job function that runs decisions with plain callables (tests, simulations)."""

    def run(job: object) -> object:
        if isinstance(job, Expand):
            return expand(job.parent_id, job.expansion_id)
        assert isinstance(job, Evaluate), f"not a decision: {job!r}"
        return evaluate(job.node_id, job.task_id, job.eval_id)

    return run


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
    best_successes: float
    best_failures: float
    best_lower_bound: float
    held: str = ""
    """Why no new job starts (paused, waiting for approvals), or empty."""


@dataclass(frozen=True)
class SearchResult:
    final_agent: int
    completed: bool
    """False when stop() ended the search before its budget was spent."""
    evals_done: int


@dataclass
class _Running:
    decision: Decision
    deadline: float | None
    """time.monotonic() after which the job is cancelled."""


class Search:
    """The scheduler over a run store and an executor (see the module docstring)."""

    def __init__(self, store: Store, config: SearchConfig, tasks: list[str], executor: Executor, *,
                 prepare: Callable[[Decision], object] | None = None,
                 unpack: Callable[[Decision, object], EvalOutcome | ExpansionOutcome] | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 deadlines: dict[JobKind, float] | None = None, max_attempts: int = 3,
                 stages: list[list[str]] | None = None, steer: SteerConfig | None = None) -> None:
        """`prepare(decision)` makes the job the executor runs (default: the decision itself);
        `unpack(decision, result)` turns what the job returned into its outcome, on the scheduler's side,
        only for a result that will be committed (default: the result is the outcome). `deadlines`:
        seconds a job of each kind may run before it is cancelled; `max_attempts`: dispatches of one job
        whose worker died before it is booked infra_error; `stages`: search.dgm_paper.stages resolved to
        task ids (by the run, which knows the benchmark's subsets); `steer`: the run's steer section."""
        if not tasks or len(set(tasks)) != len(tasks):
            raise UserError("the search needs a non-empty list of distinct task ids")
        self.store, self.config, self.tasks, self.executor = store, config, tasks, executor
        self._prepare = prepare or (lambda d: d)
        self._unpack: Callable[[Decision, object], EvalOutcome | ExpansionOutcome] = unpack or _as_outcome
        self.on_progress, self.deadlines, self.max_attempts = on_progress, deadlines or {}, max_attempts
        self.policy = make_policy(config, tasks, stages)
        self.rng = np.random.default_rng(config.seed)
        self.steer_config = steer or SteerConfig()
        self.steering = Steering(gate=self.steer_config.gates_rewrites)
        self.held = ""
        """Why the scheduler holds (steering), or empty."""
        self._last_hold = ""
        if config.max_task_evals - config.finalists * config.finalist_evals < 1:
            raise UserError("search.finalists * search.finalist_evals leaves no budget for the search; "
                            "raise search.max_task_evals")
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._fatal: BaseException | None = None
        self._running: dict[JobKey, _Running] = {}
        self._consecutive_infra = 0
        self.infra_errors = 0
        self.failed_rewrites_in_a_row = 0
        """Failed rewrites since the last committed one (this process; a resume starts again at 0)."""
        self._last_rewrite_failures: deque[str] = deque(maxlen=3)
        self.dropped_results = 0
        """Results not committed: duplicates, or late results of an attempt redone or past its deadline."""
        self.redispatched = 0
        self._exhausted = ""
        self.tree = rebuild_tree(store, tasks, self._apply_steering, self.steering.gate)
        state = store.get_meta(MetaKey.POLICY_STATE)
        self.policy.restore(json.loads(state) if state else None, self.tree)
        self._saved_state = state
        saved = store.get_meta(MetaKey.FINALISTS)
        self.finalists = {int(k): v for k, v in json.loads(saved).items()} if saved else None

    @property
    def max_task_evals(self) -> int:
        """The budget: the configured one plus what `budget +N` added."""
        return self.config.max_task_evals + self.steering.extra_evals

    @property
    def search_budget(self) -> int:
        """Task evaluations for the search itself (the finalists' are kept apart)."""
        return self.max_task_evals - self.config.finalists * self.config.finalist_evals

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        """Search until the budget is spent, stop() is called, or an error stops it (re-raised here
        once the work in flight has finished; a bug in the scheduler itself is raised at once)."""
        warned = False
        while True:
            starved = self._dispatch()
            if not self._running:
                if self.held and not self._stop.is_set() and self._fatal is None:
                    self._stop.wait(HOLD_POLL_S)  # a person may resume, approve or add budget
                    continue
                if not starved or self._stop.is_set():
                    break
                if not warned:  # e.g. every worker node of a cluster is gone: wait for one to come back
                    log.warning("no worker slot is available; waiting for the executor to have one")
                warned = True
            for delivery in self.executor.wait(min(self._wait_s(), HOLD_POLL_S) if self.held else self._wait_s()):
                self._deliver(delivery)
            self._expire()
        if self._fatal is not None:
            raise self._fatal
        if self._exhausted and not self._stop.is_set():
            raise SearchExhausted(self._exhausted)
        final = self.final_agent()
        completed = not self._stop.is_set()
        if completed:
            self.store.set_meta(MetaKey.FINAL_AGENT, str(final))
        return SearchResult(final, completed, self.tree.evals_done)

    def final_agent(self) -> int:
        """The policy's best agent; once finalists were re-evaluated, the best of them. An agent a
        person vetoed or rejected, or a child still waiting for approval, is not named."""
        with self._lock:
            t = self.tree
            unseen = self.steering.blocked(list(t.agents), t.root_id)
            ranked = [i for i in self.policy.rank(t) if i not in unseen] or [t.root_id]
            return next((i for i in ranked if self.finalists is None or i in self.finalists), ranked[0])

    def stop(self) -> None:
        """Start no new work; work in flight finishes (or is abandoned if the process exits)."""
        self._stop.set()

    def _dispatch(self) -> bool:
        """Fill the free slots, one decision at a time, each recorded in the store before it is submitted.
        True when it stopped for want of a free slot (not because there was nothing to start)."""
        with self._lock:
            while len(self._running) < self.executor.slots():
                held, self.held = self.held, ""
                decision = self._next_job()
                if held and not self.held:
                    log.info("no longer holding (%s)", held.split(":")[0])
                    self._last_hold = ""
                if decision is None or decision == WAIT:
                    return False
                assert not isinstance(decision, str)
                self._submit(decision)
            return not self._stop.is_set() and self._fatal is None

    def _submit(self, decision: Decision) -> None:
        budget = self.deadlines.get(decision.key.kind)
        self._running[decision.key] = _Running(decision, time.monotonic() + budget if budget else None)
        self.executor.submit(decision.key, self._prepare(decision))

    def _wait_s(self) -> float:
        deadlines = [r.deadline for r in self._running.values() if r.deadline is not None]
        soonest = min(deadlines, default=time.monotonic() + 2.0) - time.monotonic()
        return min(max(soonest, 0.0), 2.0)  # wake now and then: the executor's slots may change

    def _deliver(self, d: Delivery) -> None:
        with self._lock:
            running = self._running.get(d.key)
            if running is None or not self.store.is_open(d.key.kind, d.key.row_id, d.key.attempt):
                self.dropped_results += 1
                log.info("dropped a result of %s %d attempt %d: its dispatch is closed (a duplicate, or a late "
                         "result of an attempt that was redone or cut by its deadline)", *_key_args(d.key))
                return
            decision = running.decision
            if d.lost is not None:
                if d.key.attempt < self.max_attempts:
                    self._count_infra(ErrorType.WORKER_LOST, d.lost)
                    self._redo(decision, d.lost)
                    return
                outcome = _infra(decision, ErrorType.WORKER_LOST, f"the job's worker was lost {d.key.attempt} times; "
                                                          f"last: {d.lost}")
            elif d.error is not None:
                outcome = _infra(decision, *d.error)
            else:
                try:
                    outcome = self._unpack(decision, d.result)
                except (OSError, RuntimeError, tarfile.TarError) as e:  # logs or bundle could not come home
                    outcome = _infra(decision, type(e).__name__, traceback.format_exc())
            self._commit(decision, outcome)

    def _redo(self, decision: Decision, reason: str) -> None:
        attempt = self.store.redispatch(decision.key.kind, decision.key.row_id, decision.key.attempt, reason)
        assert attempt is not None, f"{decision} was running but its dispatch is closed"
        del self._running[decision.key]
        self.redispatched += 1
        log.info("%s %d: worker lost (%s); dispatched again as attempt %d", *_key_args(decision.key)[:2],
                 reason.strip().splitlines()[-1][:200] if reason.strip() else "", attempt)
        self._submit(replace(decision, attempt=attempt))

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            for key, running in list(self._running.items()):
                if running.deadline is not None and now >= running.deadline:
                    self.executor.cancel(key)
                    budget = self.deadlines[key.kind]
                    log.info("%s %d attempt %d passed its %g s deadline: cancelled", *_key_args(key), budget)
                    self._commit(running.decision, _infra(running.decision, ErrorType.DEADLINE_EXCEEDED,
                                                          f"the job ran past its {budget:g} s deadline and was "
                                                          "cancelled"))

    def _commit(self, decision: Decision, outcome: ExpansionOutcome | EvalOutcome) -> None:
        """Book an outcome: the store transaction, then the counters; under the lock."""
        t, key = self.tree, decision.key
        if isinstance(decision, Expand):
            assert isinstance(outcome, ExpansionOutcome), f"expand returned {outcome!r}"
            if not self.store.is_open(key.kind, key.row_id, key.attempt):
                raise AssertionError(f"{decision} was running but its dispatch is closed")
            child = self.store.finish_expansion(decision.expansion_id, outcome, key.attempt)
            parent = t.agents[decision.parent_id]
            parent.expansions_in_flight -= 1
            t.expansions_in_flight -= 1
            if child is not None:
                t.add_agent(child, decision.parent_id, outcome.commit)
                t.finished_expansions += 1
                if not self.steering.gate:  # with approvals, the approval resets it (_apply_steering)
                    parent.failed_rewrites_in_a_row = 0
                self.failed_rewrites_in_a_row = 0
            elif outcome.status == ExpansionStatus.FAILED:
                t.failed_expansions += 1
                t.finished_expansions += 1
                parent.failed_rewrites_in_a_row += 1
                self._count_failed_rewrite(decision.parent_id, outcome)
            elif decision.parent_id == t.root_id:
                t.root_attempts -= 1  # infra error: the initial expansion is redone
        else:
            assert isinstance(outcome, EvalOutcome), f"evaluate returned {outcome!r}"
            committed = self.store.finish_evaluation(decision.eval_id, outcome, key.attempt)
            assert committed, f"{decision} was running but its dispatch is closed"
            agent = t.agents[decision.node_id]
            agent.evals_in_flight -= 1
            t.evals_in_flight -= 1
            if (won := success(outcome.status, outcome.score)) is not None:
                t.record(decision.node_id, won)
            else:  # infra error: the pair may be retried
                agent.task_runs[decision.task_id] -= 1
                if not agent.task_runs[decision.task_id]:
                    agent.claimed_tasks.discard(decision.task_id)
        del self._running[key]
        self.policy.update(t)
        self._save_policy_state()
        if outcome.status in (EvalStatus.INFRA_ERROR, ExpansionStatus.INFRA_ERROR):
            self._count_infra(outcome.error_type, outcome.error)
        else:
            self._consecutive_infra = 0
        if self.on_progress is not None:
            self.on_progress(self.snapshot())

    def _count_infra(self, error_type: str | None, error: str | None) -> None:
        self.infra_errors += 1
        self._consecutive_infra += 1
        limit = self.config.max_consecutive_infra_errors
        if self._consecutive_infra >= limit and self._fatal is None:
            last = (error or "").strip().splitlines()[-1:] or [""]
            self._fatal = InfraErrorLimit(
                f"{limit} infra errors in a row (last: {error_type}: {last[0]}). The harness cannot "
                "run agents; fix the cause (try `hgm doctor`), then resume the run.")

    def _count_failed_rewrite(self, parent_id: int, outcome: ExpansionOutcome) -> None:
        self.failed_rewrites_in_a_row += 1
        self._last_rewrite_failures.append(f"node {parent_id}: {(outcome.reason or outcome.error_type or '?')[:200]}")
        limit = self.config.max_consecutive_failed_rewrites
        if self.failed_rewrites_in_a_row >= limit and self._fatal is None:
            reasons = "; ".join(self._last_rewrite_failures)
            self._fatal = RewriteLimit(
                f"{limit} rewrites failed in a row (search.max_consecutive_failed_rewrites), each one paid LLM "
                f"calls, so the run stopped. Last reasons: {reasons}. Their logs are under nodes/<id>/expansions/ "
                "of the run directory. If the cause is passing (an overloaded or flaky model), resume the run: "
                "the count starts again; if the model cannot do this (e.g. never answers the diagnosis's JSON "
                "plan), start a new run with another --diagnose-llm / --self-improve-llm.")

    # -- decisions -----------------------------------------------------------------------------
    def _next_job(self) -> Decision | str | None:
        """The decision, made under the lock; its start is recorded in the store."""
        t, cfg = self.tree, self.config
        if self._stop.is_set() or self._fatal is not None:
            return None
        self._read_steering()
        if self.steering.paused:
            return self._hold(f"paused by a person: `hgm steer {self._run_name()} resume` lets it go on")
        used = t.evals_done + t.evals_in_flight
        if self.finalists is None and used >= self.search_budget:
            if t.evals_in_flight:
                return WAIT
            if not cfg.finalists:
                return None
            self._start_finalists()
        if self.finalists is not None:
            return self._finalist_job()
        # A rewrite is not started when it could be the K-th failed one in a row (in-flight ones counted).
        may_rewrite = self.failed_rewrites_in_a_row + t.expansions_in_flight < cfg.max_consecutive_failed_rewrites
        tau = self.policy.temperature(self.search_budget, used)
        step = self.policy.next_step(Decide(self._steered_view(), self.rng, tau, may_rewrite))
        self._save_policy_state()
        target = step.parent_id if isinstance(step, ExpandStep) else getattr(step, "node_id", None)
        if target is not None and target in self.steering.blocked([target], t.root_id):
            step = None  # a policy with its own schedule named an agent a person blocked: it is left alone
        waiting = sorted(i for i in t.agents if self.steering.pending(i, t.root_id))
        if isinstance(step, ExpandStep) and waiting and not self.policy.should_expand(t) \
                and not (step.parent_id == t.root_id and t.root_attempts < cfg.initial_expansions):
            step = None  # children waiting for approval count in |T|: nothing to evaluate is no reason to rewrite
        if isinstance(step, ExpandStep):
            pinned = self._pinned()
            if pinned is not None:
                return self._start_expand(pinned)
            return self._start_expand(step.parent_id, step.rewriter_id)
        if isinstance(step, EvalStep):
            return self._start_eval(t.agents[step.node_id], step.task_id)
        if step == WAIT or t.evals_in_flight or t.expansions_in_flight:
            return WAIT
        if waiting:
            return self._hold(f"nothing else to do until a person approves or rejects node(s) "
                              f"{', '.join(map(str, waiting))}: `hgm steer {self._run_name()} pending`")
        best = self.policy.rank(t)[0]
        self._exhausted = (
            f"nothing is left to try after {t.evals_done} of {self.search_budget} task evaluations: every one of the "
            f"{len(t.agents)} agents was evaluated on every task its policy ({cfg.policy}) evaluates it on, and no "
            f"agent may be rewritten (every agent's last {cfg.max_failed_rewrites_per_parent} rewrites failed, "
            f"search.max_failed_rewrites_per_parent, or the policy rewrites none). Last rewrite failures: "
            f"{'; '.join(self._last_rewrite_failures) or 'none in this process'}. The best agent so far is node "
            f"{best}; give the run more tasks or a model that can rewrite the agents.")
        return None

    # -- steering (hgm/steering.py) -------------------------------------------------------------
    def _read_steering(self) -> None:
        """Fold in the interventions added since the last decision; decide the children whose
        approval timed out (recorded as such)."""
        for row in self.store.interventions(self.steering.last_id):
            self._apply_steering(row, self.tree)
        timeout = self.steer_config.approve_timeout_s
        t = self.tree
        if timeout is None or not any(self.steering.pending(i, t.root_id) for i in t.agents):
            return
        action = Action(self.steer_config.approve_timeout_action)
        for n in self.store.nodes():
            if self.steering.pending(n.id, t.root_id) and n.id in t.agents and time.time() >= n.created_at + timeout:
                self.store.add_intervention(TIMEOUT_WHO, action, n.id,
                                            why=f"nobody decided within steer.approve_timeout_s = {timeout:g} s")
        for row in self.store.interventions(self.steering.last_id):
            self._apply_steering(row, self.tree)

    def _apply_steering(self, row: Intervention, t: Tree) -> None:
        """One intervention; an approval or a rejection is the end of a rewrite for the parent's count
        of failed rewrites in a row (a rejected child is a failed rewrite)."""
        self.steering.apply(row)
        log.info("steering: %s by %s", row.describe(), row.who)
        child = t.agents.get(row.node_id) if row.node_id is not None else None
        if child is not None and child.parent_id is not None and row.action in (Action.APPROVE, Action.REJECT):
            parent = t.agents[child.parent_id]
            if row.action == Action.APPROVE and child.id in self.steering.approved:
                parent.failed_rewrites_in_a_row = 0
            elif row.action == Action.REJECT and child.id in self.steering.rejected:
                parent.failed_rewrites_in_a_row += 1

    def _steered_view(self) -> Tree:
        """The tree as the policy may use it now: the agents a person vetoed or rejected, or that wait
        for approval, stand in as copies that have seen every task and may not be rewritten (every
        policy then leaves them alone); counters, clade counters and |T| stay as they are."""
        t = self.tree
        blocked = self.steering.blocked(list(t.agents), t.root_id)
        if not blocked:
            return t
        view = copy.copy(t)
        view.agents = dict(t.agents)
        for i in blocked:
            a = t.agents[i]
            view.agents[i] = replace(a, claimed_tasks=set(self.tasks),
                                     failed_rewrites_in_a_row=self.config.max_failed_rewrites_per_parent)
        return view

    def _pinned(self) -> int | None:
        """The most recently pinned agent that may be rewritten and has rewrites of its pin left."""
        rewritable = {a.id for a in self.policy.rewritable(self._steered_view())}
        for node, pin in sorted(self.steering.pins.items(), key=lambda p: -p[1].id):
            if node not in rewritable:
                continue
            used = sum(x.id > int(pin.payload.get("after_expansion", 0)) and x.status != ExpansionStatus.INFRA_ERROR
                       for x in self.store.expansions(node))
            if used < int(pin.payload.get("count", 1)):
                return node
        return None

    def _hold(self, reason: str) -> str:
        """Hold (no new job, the loop waits and reads the store again) for `reason`."""
        if reason != self._last_hold:
            log.info("holding: %s", reason)
        self.held = self._last_hold = reason
        return WAIT

    def _run_name(self) -> str:
        run_dir = getattr(self.store, "run_dir", None)
        return str(run_dir) if run_dir is not None else "RUN"

    def _save_policy_state(self) -> None:
        state = self.policy.state()
        text = json.dumps(state, sort_keys=True) if state is not None else None
        if text is not None and text != self._saved_state:
            self.store.set_meta(MetaKey.POLICY_STATE, text)
            self._saved_state = text

    def _start_eval(self, agent: Agent, task: str | None = None) -> Evaluate:
        t = self.tree
        assert t.evals_done + t.evals_in_flight < self.max_task_evals
        if task is None:
            free = [x for x in self.tasks if x not in agent.claimed_tasks]
            at_random = self.rng.random() < self.config.eval_random_level
            task = free[int(self.rng.integers(len(free)))] if at_random else free[0]
        assert self.policy.repeats_tasks or task not in agent.claimed_tasks, f"node {agent.id} again on {task}"
        eval_id = self.store.start_evaluation(agent.id, task)
        agent.claimed_tasks.add(task)
        agent.task_runs[task] += 1
        agent.evals_in_flight += 1
        t.evals_in_flight += 1
        return Evaluate(agent.id, task, eval_id)

    def _start_expand(self, parent_id: int, rewriter_id: int | None = None) -> Expand:
        expansion_id = self.store.start_expansion(parent_id)
        self.tree.agents[parent_id].expansions_in_flight += 1
        self.tree.expansions_in_flight += 1
        if parent_id == self.tree.root_id:
            self.tree.root_attempts += 1
        return Expand(parent_id, expansion_id, rewriter_id=rewriter_id)

    def _start_finalists(self) -> None:
        blocked = self.steering.blocked(list(self.tree.agents), self.tree.root_id)
        top = [i for i in self.policy.rank(self.tree) if i not in blocked][: self.config.finalists]
        self.finalists = {i: self.tree.agents[i].evals + self.config.finalist_evals for i in top}
        self.store.set_meta(MetaKey.FINALISTS, json.dumps(self.finalists))

    def _finalist_job(self) -> Evaluate | str | None:
        assert self.finalists is not None
        blocked = self.steering.blocked(list(self.tree.agents), self.tree.root_id)
        for agent_id, target in self.finalists.items():
            a = self.tree.agents[agent_id]
            if a.evals + a.evals_in_flight < target and len(a.claimed_tasks) < self.tree.n_tasks \
                    and agent_id not in blocked:
                return self._start_eval(a)
        return WAIT if self.tree.evals_in_flight else None

    def snapshot(self) -> Progress:
        """Progress now (safe to call from any thread)."""
        with self._lock:
            t = self.tree
            best = t.agents[self.final_agent()]
            bound = float(lower_bounds([best], self.config.final_quantile)[0])
            phase = "finalists" if self.finalists is not None else "search"
            return Progress(phase, len(t.agents), t.expansions_in_flight, t.failed_expansions, t.evals_done,
                            self.max_task_evals, t.evals_in_flight, self.infra_errors, best.id,
                            best.own_successes, best.own_failures, bound, self.held)


def rebuild_tree(store: Store, tasks: list[str],
                 steer: Callable[[Intervention, Tree], None] | None = None, gate: bool = False) -> Tree:
    """The tree and its counters from the store, as the search rebuilds them on resume (resume =
    reopen), with the number of the root's rewrites that count as initial expansions. `steer` is
    given the interventions in order with the rewrites (an approval or a rejection ends a rewrite
    for its parent's count of failed rewrites in a row: with `gate`, a committed child does not)."""
    t = Tree(len(tasks))
    known = set(tasks)
    for n in store.nodes():
        t.add_agent(n.id, n.parent_id, n.commit)
    if t.root_id < 0:
        raise ValueError("the run store has no root agent; add it with store.add_node(None, commit)")
    for e in store.evaluations():
        if e.status == EvalStatus.IN_FLIGHT:
            raise ValueError("the run store has work in flight; open it writable first (that resets it)")
        if (won := e.success) is not None:
            if e.task_id not in known:
                raise UserError(f"the run evaluated task {e.task_id!r}, which is not in this task list; "
                                "resume with the run's own benchmark settings")
            t.agents[e.node_id].claimed_tasks.add(e.task_id)
            t.agents[e.node_id].task_runs[e.task_id] += 1
            t.record(e.node_id, won)
    events: list[tuple[float, bool, int, ExpansionRow | Intervention]] = \
        [(x.finished_at or x.started_at, False, x.id, x) for x in store.expansions()]
    if steer is not None:
        events += [(r.created_at, True, r.id, r) for r in store.interventions()]
    for *_, x in sorted(events, key=lambda e: e[:3]):
        if isinstance(x, Intervention):
            assert steer is not None
            steer(x, t)
            continue
        if x.status == ExpansionStatus.IN_FLIGHT:
            raise ValueError("the run store has work in flight; open it writable first (that resets it)")
        parent = t.agents[x.parent_id]
        if x.status == ExpansionStatus.FAILED:
            t.failed_expansions += 1
            parent.failed_rewrites_in_a_row += 1
        elif x.status == ExpansionStatus.COMMITTED and not gate:
            parent.failed_rewrites_in_a_row = 0
        t.finished_expansions += x.status in (ExpansionStatus.FAILED, ExpansionStatus.COMMITTED)
        t.root_attempts += x.parent_id == t.root_id and x.status != ExpansionStatus.INFRA_ERROR
    return t


def _as_outcome(decision: Decision, result: object) -> EvalOutcome | ExpansionOutcome:
    """The default unpack: the job returned its outcome itself."""
    job = "expand" if isinstance(decision, Expand) else "evaluate"
    assert isinstance(result, EvalOutcome | ExpansionOutcome), f"{job} returned {result!r}"  # a bug: propagates
    return result


def _infra(decision: Decision, error_type: str, error: str) -> EvalOutcome | ExpansionOutcome:
    if isinstance(decision, Expand):
        return ExpansionOutcome(ExpansionStatus.INFRA_ERROR, error_type=error_type, error=error,
                                reason=f"infra error: {error_type}")
    return EvalOutcome(EvalStatus.INFRA_ERROR, error_type=error_type, error=error)


def _key_args(key: JobKey) -> tuple[str, int, int]:
    return ("evaluation" if key.kind == JobKind.EVAL else "expansion", key.row_id, key.attempt)
