"""The run store: round trips, reopen semantics, errors a user can fix, thread safety."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from hgm.config import load_config
from hgm.domain import (
    DispatchState,
    ErrorType,
    EvalOutcome,
    EvalStatus,
    ExpansionOutcome,
    ExpansionStatus,
    JobKind,
    MetaKey,
    VerdictFlag,
)
from hgm.errors import UserError
from hgm.store import SCHEMA_VERSION, RunStore


@pytest.fixture
def store(tmp_path: Path):
    s = RunStore.create(tmp_path / "run", load_config(overrides=["search.alpha=0.5"]))
    yield s
    s.close()


def _llm_call(store: RunStore, **kw) -> int:
    args = {"session": "s1", "role": "downstream", "model": "m", "node_id": 1, "task_id": "t1", "status": "ok",
            "attempts": 1, "latency_s": 0.5, "prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 2,
            "cost_usd": 0.01, "request": {"messages": []}, "response_json": "{}", "error": None}
    args.update(kw)
    return store.llm.record(**args)


def test_create_writes_config_and_reopens_with_it(store: RunStore, tmp_path: Path) -> None:
    root = store.add_node(None, "c0", "initial agent")
    assert (tmp_path / "run" / "config.yaml").read_text().count("alpha: 0.5") == 1
    store.close()
    with RunStore.open(tmp_path / "run") as again:
        assert again.config.search.alpha == 0.5
        assert [(n.id, n.parent_id, n.commit, n.message) for n in again.nodes()] == [
            (root, None, "c0", "initial agent")
        ]


def test_create_refuses_a_directory_that_holds_a_run(store: RunStore, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="already holds a run"):
        RunStore.create(tmp_path / "run", load_config())


def test_evaluation_round_trip(store: RunStore) -> None:
    root = store.add_node(None, "c0")
    eid = store.start_evaluation(root, "python__x")
    assert store.evaluations()[0].status == EvalStatus.IN_FLIGHT
    store.finish_evaluation(eid, EvalOutcome(EvalStatus.SOLVED, agent_s=3.5, test_s=1.0, cost_usd=0.2,
                                             prompt_tokens=100, completion_tokens=20, log_dir="nodes/1/evals/x"))
    (row,) = store.evaluations(root)
    assert (row.status, row.agent_s, row.test_s, row.cost_usd, row.prompt_tokens, row.completion_tokens,
            row.log_dir) == (EvalStatus.SOLVED, 3.5, 1.0, 0.2, 100, 20, "nodes/1/evals/x")
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert store.evaluations(root + 1) == []
    assert store.finish_evaluation(eid, EvalOutcome(EvalStatus.FAILED)) is False, "its dispatch is closed"
    assert store.evaluations(root)[0].status == EvalStatus.SOLVED
    with pytest.raises(ValueError):
        store.finish_evaluation(store.start_evaluation(root, "y"), EvalOutcome(EvalStatus.IN_FLIGHT))


def test_a_flagged_verdict_keeps_its_detail_and_flag(store: RunStore) -> None:
    root = store.add_node(None, "c0")
    eid = store.start_evaluation(root, "go__x")
    store.finish_evaluation(eid, EvalOutcome(EvalStatus.FAILED, detail="report missing after exit 0",
                                             flag=VerdictFlag.SUSPECTED_TAMPERING))
    (row,) = store.evaluations(root)
    assert (row.status, row.detail, row.flag) == (EvalStatus.FAILED, "report missing after exit 0",
                                                  "suspected_tampering")


def test_committed_expansion_adds_the_child_failed_does_not(store: RunStore) -> None:
    root = store.add_node(None, "c0")
    x1, x2 = store.start_expansion(root), store.start_expansion(root)
    child = store.finish_expansion(x1, ExpansionOutcome(ExpansionStatus.COMMITTED, commit="c1", message="better",
                                                        entry_task="go__y", reason="tests fail"))
    assert store.finish_expansion(x2, ExpansionOutcome(ExpansionStatus.FAILED, reason="no diff")) is None
    assert [(n.id, n.parent_id, n.commit) for n in store.nodes()] == [(root, None, "c0"), (child, root, "c1")]
    e1, e2 = store.expansions(root)
    assert (e1.status, e1.child_id, e1.commit, e1.entry_task, e1.reason) == (
        ExpansionStatus.COMMITTED, child, "c1", "go__y", "tests fail")
    assert (e2.status, e2.child_id, e2.reason) == (ExpansionStatus.FAILED, None, "no diff")
    assert store.finish_expansion(x1, ExpansionOutcome(ExpansionStatus.COMMITTED, commit="c9")) is None
    assert len(store.nodes()) == 2, "a duplicate result adds no second child"


def test_reopen_marks_in_flight_work_interrupted_and_keeps_finished(store: RunStore, tmp_path: Path) -> None:
    root = store.add_node(None, "c0")
    done = store.start_evaluation(root, "a")
    store.finish_evaluation(done, EvalOutcome(EvalStatus.FAILED))
    store.start_evaluation(root, "b")
    store.start_expansion(root)
    store.close()
    with RunStore.open(tmp_path / "run", readonly=True) as ro:  # read-only: looks, changes nothing
        assert [e.status for e in ro.evaluations()] == [EvalStatus.FAILED, EvalStatus.IN_FLIGHT]
        with pytest.raises(RuntimeError, match="read-only"):
            ro.add_node(None, "x")
    with RunStore.open(tmp_path / "run") as rw:
        a, b = rw.evaluations()
        assert a.status == EvalStatus.FAILED and a.error_type is None
        assert (b.status, b.error_type) == (EvalStatus.INFRA_ERROR, ErrorType.INTERRUPTED)
        (x,) = rw.expansions()
        assert (x.status, x.error_type) == (ExpansionStatus.INFRA_ERROR, ErrorType.INTERRUPTED)
        assert rw.start_evaluation(root, "b") > b.id  # ids never reused


def test_a_result_is_committed_only_while_its_dispatch_is_open(store: RunStore, tmp_path: Path) -> None:
    root = store.add_node(None, "c0")
    eid, xid = store.start_evaluation(root, "a"), store.start_expansion(root)
    assert store.is_open(JobKind.EVAL, eid, 1) and store.is_open(JobKind.EXPAND, xid, 1)
    assert store.redispatch(JobKind.EVAL, eid, 1, "worker node died") == 2
    assert store.redispatch(JobKind.EVAL, eid, 1, "again") is None, "attempt 1 is closed already"
    assert store.finish_evaluation(eid, EvalOutcome(EvalStatus.SOLVED), attempt=1) is False, "late result dropped"
    assert store.evaluations()[0].status == EvalStatus.IN_FLIGHT
    assert store.finish_evaluation(eid, EvalOutcome(EvalStatus.FAILED), attempt=2) is True
    assert store.finish_evaluation(eid, EvalOutcome(EvalStatus.SOLVED), attempt=2) is False, "duplicate dropped"
    assert store.evaluations()[0].status == EvalStatus.FAILED
    states = [(d.kind, d.attempt, d.state, d.reason) for d in store.dispatches(JobKind.EVAL)]
    assert states == [(JobKind.EVAL, 1, DispatchState.LOST, "worker node died"),
                      (JobKind.EVAL, 2, DispatchState.DONE, None)]
    store.close()
    with RunStore.open(tmp_path / "run") as again:  # the expansion was open when the process stopped
        (x,) = again.dispatches(JobKind.EXPAND)
        assert x.state == DispatchState.INTERRUPTED and not again.is_open(JobKind.EXPAND, xid, 1)
        assert again.finish_expansion(xid, ExpansionOutcome(ExpansionStatus.COMMITTED, commit="c1")) is None
        assert len(again.nodes()) == 1


def test_open_errors_read_like_help(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no hgm run"):
        RunStore.open(tmp_path)
    (tmp_path / "run.sqlite").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(UserError, match="not a readable hgm run store"):
        RunStore.open(tmp_path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "run.sqlite") as c:
        c.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        c.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    with pytest.raises(UserError, match="not an hgm run store"):
        RunStore.open(foreign)


def test_open_refuses_another_schema_version(store: RunStore, tmp_path: Path) -> None:
    store.set_meta(MetaKey.SCHEMA_VERSION, "999")
    store.close()
    with pytest.raises(UserError, match="schema version 999"):
        RunStore.open(tmp_path / "run")


def test_meta_set_and_overwrite(store: RunStore) -> None:
    assert store.get_meta("k") is None
    store.set_meta("k", "1")
    store.set_meta("k", "2")
    assert store.get_meta("k") == "2"
    assert store.get_meta(MetaKey.SCHEMA_VERSION) == str(SCHEMA_VERSION)


def test_llm_usage_sums_and_filters(store: RunStore) -> None:
    _llm_call(store)
    _llm_call(store, role="self_improve", node_id=2, task_id=None, prompt_tokens=7, cost_usd=0.5)
    u = store.llm.usage()
    assert (u.calls, u.prompt_tokens, u.completion_tokens, u.cached_tokens) == (2, 17, 10, 4)
    assert u.cost_usd == pytest.approx(0.51)
    assert store.llm.usage(role="self_improve").prompt_tokens == 7
    assert store.llm.usage(node_id=1, task_id="t1").calls == 1
    assert store.llm.usage(node_id=3).calls == 0
    _llm_call(store, cost_usd=None, status="error", error="boom", response_json=None)
    assert store.llm.usage().cost_usd is None  # one unknown cost makes the sum unknown
    assert store.llm.usage(role="self_improve").cost_usd == pytest.approx(0.5)


def test_many_threads_write_without_losing_rows(store: RunStore) -> None:
    root = store.add_node(None, "c0")

    def work(worker: int) -> None:
        for i in range(40):
            eid = store.start_evaluation(root, f"w{worker}-{i}")
            store.finish_evaluation(eid, EvalOutcome(EvalStatus.SOLVED if i % 2 else EvalStatus.FAILED))
            if i % 10 == 0:
                store.finish_expansion(store.start_expansion(root), ExpansionOutcome(ExpansionStatus.COMMITTED))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    evals = store.evaluations()
    assert len(evals) == 240 and len({e.task_id for e in evals}) == 240
    assert all(e.status != EvalStatus.IN_FLIGHT for e in evals)
    assert len(store.nodes()) == 1 + 6 * 4
