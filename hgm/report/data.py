"""What the report, the comparison and `hgm runs` show, read from a run store (read-only, so it is
safe while the run goes on, after a kill and after a resume).

Curves replay the run's finished evaluations in the order they finished. The x axis is always
"evaluations used" (the budget's unit: solved, failed and empty_patch results), so runs of
different speed overlay in a comparison. At each point: the best agent so far by the run's own
final-agent rule (search.final_rule or its policy's default; among agents with at least one result),
its own success rate, the tree's size, failed rewrites, infra errors and cumulative LLM tokens and
dollars by role up to that moment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import betaincinv

from hgm.baselines import ArchiveMember, archive_member
from hgm.config import HGMConfig
from hgm.domain import (
    COUNTED,
    EvalStatus,
    EvaluationRow,
    ExpansionRow,
    ExpansionStatus,
    LLMCallUsage,
    MetaKey,
    NodeRow,
    Usage,
)
from hgm.policies import FinalRule, best_order
from hgm.search import final_rule
from hgm.show_tree import NodeStats, in_role_order, tree_stats
from hgm.steering import AgentRequest, Intervention, Steering, folded
from hgm.store import DB_NAME, RunStore


@dataclass
class Curves:
    """Step series over evaluations used; every list has one entry per point."""

    evals: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    """Seconds since the run started (0 for stores without clocks)."""
    best_agent: list[int] = field(default_factory=list)
    best_lower_bound: list[float] = field(default_factory=list)
    best_success_rate: list[float] = field(default_factory=list)
    agents: list[int] = field(default_factory=list)
    failed_rewrites: list[int] = field(default_factory=list)
    infra_errors: list[int] = field(default_factory=list)
    """Infra-error evaluations and rewrites (interrupted work included)."""
    tokens: dict[str, list[int]] = field(default_factory=dict)
    """Per role: cumulative prompt + completion tokens."""
    dollars: dict[str, list[float]] = field(default_factory=dict)
    """Per role: cumulative known cost."""


@dataclass
class RunData:
    run_dir: Path
    config: HGMConfig
    status: str
    """running, finished, stopped (no work in flight) or killed (work left in flight; resume it)."""
    created_at: float
    updated_at: float
    nodes: list[NodeRow]
    stats: dict[int, NodeStats]
    evaluations: list[EvaluationRow]
    expansions: list[ExpansionRow]
    usage: dict[str, Usage]
    calls: list[LLMCallUsage]
    final: int | None
    finalists: list[int]
    initial_agent: str | None
    curves: Curves
    interventions: list[Intervention] = field(default_factory=list)
    """What people did to the run (hgm steer / hgm serve), oldest first."""
    requests: list[AgentRequest] = field(default_factory=list)
    """What rewriting agents asked for."""

    @property
    def steering(self) -> Steering:
        return folded(self.interventions, self.config.steer.gates_rewrites)

    @property
    def budget(self) -> int:
        """Task evaluations: the configured budget plus what `budget +N` added."""
        return self.config.search.max_task_evals + self.steering.extra_evals

    @property
    def evals_used(self) -> int:
        return sum(e.status in COUNTED for e in self.evaluations)

    @property
    def wall_s(self) -> float:
        return max(0.0, self.updated_at - self.created_at)

    @property
    def dollars(self) -> float:
        return sum(u.known_cost_usd for u in self.usage.values())

    @property
    def dollars_complete(self) -> bool:
        return all(u.cost_usd is not None for u in self.usage.values())

    @property
    def best(self) -> int | None:
        """The final agent, or while none is named, the best so far by the final-agent rule."""
        if self.final is not None:
            return self.final
        return self.curves.best_agent[-1] if self.curves.best_agent else None

    def roles(self) -> list[str]:
        return in_role_order(self.usage)


def is_run_dir(path: Path) -> bool:
    return (Path(path) / DB_NAME).is_file()


def open_files() -> set[str]:
    """Paths that live processes other than this one hold open (Linux /proc; empty elsewhere).
    A run whose store is held open is running (or being read by another command right now)."""
    held: set[str] = set()
    me = str(os.getpid())
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit() and p != me]
    except OSError:
        return held
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                continue
    return held


def run_status(run_dir: Path, final: int | None, in_flight: bool, held: set[str] | None = None) -> str:
    held = open_files() if held is None else held
    if str((Path(run_dir) / DB_NAME).resolve()) in held:
        return "running"
    if final is not None:
        return "finished"
    return "killed" if in_flight else "stopped"


def load_run(run_dir: Path, *, held: set[str] | None = None) -> RunData:
    """Everything a report needs, from one read-only open of the store."""
    run_dir = Path(run_dir)
    with RunStore.open(run_dir, readonly=True) as store:
        nodes = store.nodes()
        evaluations = store.evaluations()
        expansions = store.expansions()
        stats = tree_stats(store, approval_gate=store.config.steer.gates_rewrites)
        usage = store.llm.usage_by_role()
        calls = store.llm.call_usage()
        final_meta = store.get_meta(MetaKey.FINAL_AGENT)
        finalists_meta = store.get_meta(MetaKey.FINALISTS)
        created = store.get_meta(MetaKey.CREATED_AT)
        initial_agent = store.get_meta(MetaKey.INITIAL_AGENT)
        state = store.get_meta(MetaKey.POLICY_STATE)
        config = store.config
        interventions = store.interventions()
        requests = store.agent_requests()
    final = int(final_meta) if final_meta is not None else None
    finalists = [int(k) for k in json.loads(finalists_meta)] if finalists_meta else []
    in_flight = any(e.status == EvalStatus.IN_FLIGHT for e in evaluations) or \
        any(x.status == ExpansionStatus.IN_FLIGHT for x in expansions)
    times = [n.created_at for n in nodes] + [c.created_at for c in calls] + \
        [t for e in evaluations for t in (e.started_at, e.finished_at) if t] + \
        [t for x in expansions for t in (x.started_at, x.finished_at) if t]
    created_at = float(created) if created else min(times, default=0.0)
    updated_at = max(times, default=created_at)
    curves = build_curves(
        nodes,
        evaluations,
        expansions,
        calls,
        config.search.final_quantile,
        created_at,
        final_rule(config.search),
        archive_member(config.search, json.loads(state) if state else None),
    )
    return RunData(run_dir, config, run_status(run_dir, final, in_flight, held), created_at, updated_at, nodes,
                   stats, evaluations, expansions, usage, calls, final, finalists, initial_agent, curves, interventions,
                   requests)


def _finish_time(row: EvaluationRow | ExpansionRow) -> float:
    return row.finished_at if row.finished_at is not None else row.started_at


def build_curves(nodes: list[NodeRow], evaluations: Iterable[EvaluationRow], expansions: Iterable[ExpansionRow],
                 calls: list[LLMCallUsage], quantile: float, start: float = 0.0, rule: FinalRule = "lower_bound",
                 member: ArchiveMember | None = None) -> Curves:
    """Replay the finished evaluations in finish order (see the module docstring). Stores without
    clocks (the simulator's in-memory store: every time 0) replay in id order. The best agent at each
    point is the one the run's final rule (`rule`; archive_best among `member`s) names from the results so far."""
    index = {n.id: i for i, n in enumerate(nodes)}
    member = member or (lambda node, used, own: own > 0)
    solved = np.zeros(len(nodes))
    failed = np.zeros(len(nodes))
    bound = np.full(len(nodes), -np.inf)  # agents without a result are not candidates
    done = sorted((e for e in evaluations if e.status in COUNTED), key=lambda e: (_finish_time(e), e.id))
    evals_all = list(evaluations)
    infra_times = np.sort([_finish_time(e) for e in evals_all if e.status == EvalStatus.INFRA_ERROR] +
                          [_finish_time(x) for x in expansions if x.status == ExpansionStatus.INFRA_ERROR])
    failed_times = np.sort([_finish_time(x) for x in expansions if x.status == ExpansionStatus.FAILED])
    node_times = np.sort([n.created_at for n in nodes])
    call_times = np.array([c.created_at for c in calls])
    roles = in_role_order({c.role for c in calls})
    cum_tokens = {r: np.cumsum([c.prompt_tokens + c.completion_tokens if c.role == r else 0 for c in calls])
                  for r in roles}
    cum_dollars = {r: np.cumsum([(c.cost_usd or 0.0) if c.role == r else 0.0 for c in calls]) for r in roles}
    curves = Curves(tokens={r: [] for r in roles}, dollars={r: [] for r in roles})
    # An in-memory store has no clocks: count everything as there from the start, like the replay order.
    clocked = bool(len(node_times)) and node_times[-1] > 0

    def point(n_evals: int, t: float, best: int) -> None:
        curves.evals.append(n_evals)
        curves.seconds.append(max(0.0, t - start) if clocked else 0.0)
        if best >= 0:
            curves.best_agent.append(nodes[best].id)
            curves.best_lower_bound.append(float(bound[best]))
            curves.best_success_rate.append(float(solved[best] / (solved[best] + failed[best])))
        else:
            curves.best_agent.append(nodes[0].id if nodes else 0)
            curves.best_lower_bound.append(float("nan"))
            curves.best_success_rate.append(float("nan"))
        upto = t if clocked else float("inf")
        curves.agents.append(int(np.searchsorted(node_times, upto, side="right")))
        curves.failed_rewrites.append(int(np.searchsorted(failed_times, upto, side="right")))
        curves.infra_errors.append(int(np.searchsorted(infra_times, upto, side="right")))
        k = int(np.searchsorted(call_times, upto, side="right"))
        for r in roles:
            curves.tokens[r].append(int(cum_tokens[r][k - 1]) if k else 0)
            curves.dollars[r].append(float(cum_dollars[r][k - 1]) if k else 0.0)

    if not nodes:
        return curves

    def best(used: int) -> int:
        archive = np.array([member(node.id, used, round(solved[i] + failed[i])) for i, node in enumerate(nodes)])
        return int(best_order(rule, solved, failed, quantile, archive)[0])

    point(0, start, -1)
    for n, e in enumerate(done, 1):
        i = index[e.node_id]
        won = e.success or 0.0  # `done` holds counted results only
        solved[i] += won
        failed[i] += 1 - won
        bound[i] = betaincinv(1 + solved[i], 1 + failed[i], quantile)
        point(n, _finish_time(e), best(n))
    last = max([start, *(c.created_at for c in calls), *(_finish_time(e) for e in evals_all),
                *(_finish_time(x) for x in expansions), *node_times])
    if clocked and (curves.seconds[-1] < last - start):  # work after the last result (rewrites, LLM calls)
        point(len(done), last, best(len(done)) if done else -1)
    return curves
