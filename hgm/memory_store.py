"""In-memory stand-in for the run store, with the methods the search uses (fast simulations only).

Same exactly-once rules as hgm/store.py: a result is committed only while its dispatch is open.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from hgm.domain import (
    DispatchRow,
    DispatchState,
    EvalOutcome,
    EvalStatus,
    EvaluationRow,
    ExpansionOutcome,
    ExpansionRow,
    ExpansionStatus,
    JobKind,
    NodeRow,
)
from hgm.steering import Action, AgentRequest, Intervention, RequestKind


class MemoryStore:
    """In-memory stand-in for RunStore with the methods the search uses (fast simulations only)."""

    def __init__(self) -> None:
        self._nodes: list[NodeRow] = []
        self._evals: dict[int, EvaluationRow] = {}
        self._exps: dict[int, ExpansionRow] = {}
        self._dispatches: dict[tuple[JobKind, int, int], DispatchRow] = {}
        self._meta: dict[str, str] = {}
        self._interventions: list[Intervention] = []
        self._requests: list[AgentRequest] = []

    def add_node(self, parent_id: int | None, commit: str | None, message: str = "") -> int:
        self._nodes.append(NodeRow(len(self._nodes) + 1, parent_id, commit, message, time.time()))
        return len(self._nodes)

    def nodes(self) -> list[NodeRow]:
        return list(self._nodes)

    def start_evaluation(self, node_id: int, task_id: str) -> int:
        eid = len(self._evals) + 1
        self._evals[eid] = EvaluationRow(eid, node_id, task_id, EvalStatus.IN_FLIGHT, 0.0, None, None, None, None, 0, 0,
                                         None, None, None)
        self._open(JobKind.EVAL, eid, 1)
        return eid

    def finish_evaluation(self, eval_id: int, outcome: EvalOutcome, attempt: int = 1) -> bool:
        if not self._close(JobKind.EVAL, eval_id, attempt, DispatchState.DONE, None):
            return False
        o = outcome
        self._evals[eval_id] = replace(self._evals[eval_id], status=EvalStatus(o.status), agent_s=o.agent_s,
                                       test_s=o.test_s, cost_usd=o.cost_usd, error_type=o.error_type, error=o.error,
                                       log_dir=o.log_dir, detail=o.detail, flag=o.flag, score=o.score)
        return True

    def evaluations(self, node_id: int | None = None) -> list[EvaluationRow]:
        return [e for e in self._evals.values() if node_id is None or e.node_id == node_id]

    def start_expansion(self, parent_id: int) -> int:
        xid = len(self._exps) + 1
        self._exps[xid] = ExpansionRow(xid, parent_id, None, ExpansionStatus.IN_FLIGHT, None, "", "", None, 0.0,
                                       *[None] * 5)
        self._open(JobKind.EXPAND, xid, 1)
        return xid

    def finish_expansion(self, expansion_id: int, outcome: ExpansionOutcome, attempt: int = 1) -> int | None:
        if not self._close(JobKind.EXPAND, expansion_id, attempt, DispatchState.DONE, None):
            return None
        row = self._exps[expansion_id]
        child = None
        if outcome.status == ExpansionStatus.COMMITTED:
            child = self.add_node(row.parent_id, outcome.commit, outcome.message)
        o = outcome
        self._exps[expansion_id] = replace(row, status=ExpansionStatus(o.status), child_id=child, commit=o.commit,
                                           message=o.message, reason=o.reason, entry_task=o.entry_task,
                                           error_type=o.error_type, error=o.error, log_dir=o.log_dir)
        return child

    def expansions(self, parent_id: int | None = None) -> list[ExpansionRow]:
        return [x for x in self._exps.values() if parent_id is None or x.parent_id == parent_id]

    def is_open(self, kind: JobKind, row_id: int, attempt: int) -> bool:
        d = self._dispatches.get((kind, row_id, attempt))
        return d is not None and d.state == DispatchState.OPEN

    def redispatch(self, kind: JobKind, row_id: int, attempt: int, reason: str) -> int | None:
        if not self._close(kind, row_id, attempt, DispatchState.LOST, reason):
            return None
        self._open(kind, row_id, attempt + 1)
        return attempt + 1

    def dispatches(self, kind: JobKind | None = None) -> list[DispatchRow]:
        return [d for d in self._dispatches.values() if kind is None or d.kind == kind]

    def _open(self, kind: JobKind, row_id: int, attempt: int) -> None:
        self._dispatches[(kind, row_id, attempt)] = DispatchRow(kind, row_id, attempt, DispatchState.OPEN, 0.0,
                                                                None, None)

    def _close(self, kind: JobKind, row_id: int, attempt: int, state: DispatchState, reason: str | None) -> bool:
        if not self.is_open(kind, row_id, attempt):
            return False
        self._dispatches[(kind, row_id, attempt)] = replace(self._dispatches[(kind, row_id, attempt)], state=state,
                                                            closed_at=0.0, reason=reason)
        return True

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def add_intervention(self, who: str, action: Action, node_id: int | None = None,
                         payload: dict[str, Any] | None = None, why: str = "") -> int:
        payload = dict(payload or {})
        if action in (Action.PIN, Action.HINT):
            payload["after_expansion"] = max(self._exps, default=0)
        row = Intervention(len(self._interventions) + 1, time.time(), who, Action(action), node_id, payload, why)
        self._interventions.append(row)
        return row.id

    def interventions(self, after_id: int = 0) -> list[Intervention]:
        return [i for i in self._interventions if i.id > after_id]

    def add_agent_request(self, expansion_id: int, node_id: int, kind: RequestKind, what: str, why: str) -> int:
        row = AgentRequest(len(self._requests) + 1, time.time(), expansion_id, node_id, RequestKind(kind), what, why)
        self._requests.append(row)
        return row.id

    def agent_requests(self) -> list[AgentRequest]:
        return list(self._requests)
