"""The scheduler under steering (hgm/steering.py), over the in-memory store and quick callables:
each intervention is a row the scheduler reads at its next decision. Live runs: tests/test_steer_live.py."""

from __future__ import annotations

import threading
import time

import pytest

from hgm.config import SearchConfig, SteerConfig
from hgm.domain import EvalOutcome, EvalStatus, ExpansionOutcome, ExpansionStatus
from hgm.errors import SearchExhausted
from hgm.executors.local import LocalExecutor
from hgm.memory_store import MemoryStore
from hgm.search import Search, job_function
from hgm.steering import TIMEOUT_WHO, Action

TASKS = [f"t{i}" for i in range(6)]


def expand(parent_id: int, expansion_id: int) -> ExpansionOutcome:
    return ExpansionOutcome(ExpansionStatus.COMMITTED, commit=f"c{expansion_id}")


def evaluate(node_id: int, task_id: str, eval_id: int) -> EvalOutcome:
    return EvalOutcome(EvalStatus.SOLVED if int(task_id[1:]) % 2 == 0 else EvalStatus.FAILED)


def search(store: MemoryStore, steer: SteerConfig | None = None, **kw: object) -> Search:
    config = SearchConfig(**{"max_task_evals": 12, "initial_evals": 2, "initial_expansions": 1, **kw})
    return Search(store, config, TASKS, LocalExecutor(job_function(expand, evaluate), 1), steer=steer)


def two_nodes() -> MemoryStore:
    store = MemoryStore()
    store.add_node(None, "root")
    store.add_node(1, "child")
    return store


def in_thread(s: Search) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(s.run()), daemon=True)
    thread.start()
    return thread, out


def test_a_vetoed_node_is_never_evaluated_nor_expanded_and_its_clade_counters_stay() -> None:
    store = two_nodes()
    store.add_intervention("me", Action.VETO, 2, why="broken lineage")
    s = search(store)
    assert s.run().completed
    assert not [e for e in store.evaluations() if e.node_id == 2]
    assert not [x for x in store.expansions() if x.parent_id == 2]
    assert s.tree.agents[2].clade_successes == s.tree.agents[2].clade_failures == 0
    assert s.tree.evals_done == 12


def test_pause_holds_the_search_until_resume_then_it_goes_on() -> None:
    store = two_nodes()
    store.add_intervention("me", Action.PAUSE)
    s = search(store)
    thread, out = in_thread(s)
    time.sleep(1.5)
    assert thread.is_alive() and not store.evaluations() and not store.expansions(), "nothing starts while paused"
    assert s.snapshot().held.startswith("paused by a person")
    store.add_intervention("me", Action.RESUME)
    thread.join(30)
    assert out and out[0].completed and s.tree.evals_done == 12 and not s.held  # type: ignore[attr-defined]


def test_budget_adds_task_evaluations() -> None:
    store = two_nodes()
    store.add_intervention("me", Action.BUDGET, payload={"evals": 5})
    s = search(store)
    s.run()
    counted = [e for e in store.evaluations() if e.status != EvalStatus.INFRA_ERROR]
    assert len(counted) == 17 and s.snapshot().evals_budget == 17


def test_a_pinned_node_is_the_parent_of_the_next_k_rewrites() -> None:
    store = two_nodes()
    for task in ("t0", "t1"):  # the root is the policy's natural parent: node 2 has no success
        eid = store.start_evaluation(1, task)
        store.finish_evaluation(eid, evaluate(1, task, eid))
    store.add_intervention("me", Action.PIN, 2, payload={"count": 2})
    s = search(store, initial_evals=0, initial_expansions=0, max_task_evals=20)
    s.run()
    parents = [x.parent_id for x in store.expansions()]
    assert parents[:2] == [2, 2] and 2 not in parents[2:], parents


def test_a_pending_child_is_never_evaluated_before_approval_and_the_search_holds_for_it() -> None:
    store = MemoryStore()
    store.add_node(None, "root")
    s = search(store, SteerConfig(approve="rewrites"), max_task_evals=8, initial_evals=6)
    thread, out = in_thread(s)
    end = time.monotonic() + 20
    while "approves or rejects" not in s.held and time.monotonic() < end:
        time.sleep(0.1)
    # The root has seen every task; its children wait; |T| = 3 > 6**0.6: no more rewrites either.
    assert "node(s) 2, 3:" in s.held, s.held
    time.sleep(1.0)
    assert [n.id for n in store.nodes()] == [1, 2, 3] and thread.is_alive()
    assert not [e for e in store.evaluations() if e.node_id != 1]
    approved_at = time.time()
    store.add_intervention("me", Action.APPROVE, 2)
    thread.join(30)
    assert out and out[0].completed  # type: ignore[attr-defined]
    mine = [e for e in store.evaluations() if e.node_id == 2]
    assert len(mine) == 2, "the budget left went to the approved child"
    assert not [e for e in store.evaluations() if e.node_id == 3], "node 3 still waits"
    assert [i.action for i in store.interventions()] == [Action.APPROVE] and approved_at


def test_an_approval_timeout_rejects_and_is_recorded_as_such() -> None:
    store = MemoryStore()
    store.add_node(None, "root")
    steer = SteerConfig(approve="rewrites", approve_timeout_s=0.5, approve_timeout_action="reject")
    s = search(store, steer, max_task_evals=8, initial_evals=6, initial_expansions=1, max_failed_rewrites_per_parent=2)
    with pytest.raises(SearchExhausted):  # the root saw every task and its two rewrites were rejected
        s.run()
    timed_out = [i for i in store.interventions() if i.who == TIMEOUT_WHO]
    assert timed_out and all(i.action == Action.REJECT for i in timed_out)
    assert not [e for e in store.evaluations() if e.node_id != 1]
    assert [n.id for n in store.nodes()] == [1, 2, 3] and len(timed_out) == 2, "a rejection counts as a failed rewrite"
    assert all("approve_timeout_s" in i.why for i in timed_out)


def test_finalists_leave_out_a_vetoed_agent() -> None:
    store = two_nodes()
    for task in ("t0", "t2", "t4"):  # node 2 looks best: it would be a finalist
        eid = store.start_evaluation(2, task)
        store.finish_evaluation(eid, evaluate(2, task, eid))
    store.add_intervention("me", Action.VETO, 2)
    s = search(store, max_task_evals=10, finalists=1, finalist_evals=2, initial_expansions=0)
    s.run()
    assert 2 not in (s.finalists or {}) and len([e for e in store.evaluations() if e.node_id == 2]) == 3
    assert s.final_agent() != 2, "nor is it named final"
