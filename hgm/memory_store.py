"""In-memory stand-in for the run store, with the methods the search uses (fast simulations only)."""

from __future__ import annotations

from dataclasses import replace

from hgm.domain import EvalOutcome, EvalStatus, EvaluationRow, ExpansionOutcome, ExpansionRow, ExpansionStatus, NodeRow


class MemoryStore:
    """In-memory stand-in for RunStore with the methods the search uses (fast simulations only)."""

    def __init__(self) -> None:
        self._nodes: list[NodeRow] = []
        self._evals: dict[int, EvaluationRow] = {}
        self._exps: dict[int, ExpansionRow] = {}
        self._meta: dict[str, str] = {}

    def add_node(self, parent_id: int | None, commit: str | None, message: str = "") -> int:
        self._nodes.append(NodeRow(len(self._nodes) + 1, parent_id, commit, message, 0.0))
        return len(self._nodes)

    def nodes(self) -> list[NodeRow]:
        return list(self._nodes)

    def start_evaluation(self, node_id: int, task_id: str) -> int:
        eid = len(self._evals) + 1
        self._evals[eid] = EvaluationRow(eid, node_id, task_id, EvalStatus.IN_FLIGHT, 0.0, *[None] * 4, 0, 0,
                                         None, None, None)
        return eid

    def finish_evaluation(self, eval_id: int, outcome: EvalOutcome) -> None:
        o = outcome
        self._evals[eval_id] = replace(self._evals[eval_id], status=EvalStatus(o.status), agent_s=o.agent_s,
                                       test_s=o.test_s, cost_usd=o.cost_usd, error_type=o.error_type, error=o.error,
                                       log_dir=o.log_dir, detail=o.detail, flag=o.flag)

    def evaluations(self, node_id: int | None = None) -> list[EvaluationRow]:
        return [e for e in self._evals.values() if node_id is None or e.node_id == node_id]

    def start_expansion(self, parent_id: int) -> int:
        xid = len(self._exps) + 1
        self._exps[xid] = ExpansionRow(xid, parent_id, None, ExpansionStatus.IN_FLIGHT, None, "", "", None, 0.0,
                                       *[None] * 5)
        return xid

    def finish_expansion(self, expansion_id: int, outcome: ExpansionOutcome) -> int | None:
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

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)
