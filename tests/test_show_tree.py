"""show-tree counts and formats, read from a real store (and while a writer holds it open)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from hgm.config import load_config
from hgm.domain import EvalOutcome, EvalStatus, ExpansionOutcome, ExpansionStatus, MetaKey
from hgm.show_tree import load, render_dot, render_json, render_rich, render_text
from hgm.store import RunStore


def _eval(store: RunStore, node: int, task: str, status: EvalStatus) -> None:
    store.finish_evaluation(store.start_evaluation(node, task), EvalOutcome(status))


def _run(tmp_path: Path) -> RunStore:
    store = RunStore.create(tmp_path / "run", load_config())
    root = store.add_node(None, "a" * 40, "initial agent")
    _eval(store, root, "python__a", EvalStatus.SOLVED)
    _eval(store, root, "python__b", EvalStatus.FAILED)
    _eval(store, root, "python__c", EvalStatus.INFRA_ERROR)  # counts for nothing
    e1 = store.start_expansion(root)
    child = store.finish_expansion(e1, ExpansionOutcome(ExpansionStatus.COMMITTED, commit="b" * 40,
                                                        message="add a test-running tool"))
    store.finish_expansion(store.start_expansion(root), ExpansionOutcome(ExpansionStatus.FAILED, reason="empty diff"))
    store.finish_expansion(store.start_expansion(root), ExpansionOutcome(ExpansionStatus.INFRA_ERROR, reason="x"))
    assert child is not None
    _eval(store, child, "python__a", EvalStatus.SOLVED)
    _eval(store, child, "python__b", EvalStatus.SOLVED)
    _eval(store, child, "python__d", EvalStatus.EMPTY_PATCH)
    grandchild = store.finish_expansion(store.start_expansion(child),
                                        ExpansionOutcome(ExpansionStatus.COMMITTED, commit="c" * 40, message="x"))
    assert grandchild is not None
    store.start_evaluation(grandchild, "python__a")  # in flight
    store.set_meta(MetaKey.FINAL_AGENT, str(child))
    return store


def test_counts_and_formats(tmp_path: Path) -> None:
    writer = _run(tmp_path)  # stays open: show-tree reads while a run writes
    stats = load(tmp_path / "run")
    root, child, grand = stats[1], stats[2], stats[3]
    assert (root.solved, root.evaluated, root.infra_errors) == (1, 2, 1)
    assert (root.clade_solved, root.clade_evaluated) == (3, 5)
    assert root.cmp == 3 / 5 and root.children == [2] and root.failed_expansions == 1
    assert root.infra_expansions == 1
    assert (child.solved, child.evaluated, child.clade_solved, child.clade_evaluated) == (2, 3, 2, 3)
    assert child.final and not root.final
    assert (grand.evaluated, grand.in_flight, grand.cmp) == (0, 1, None)

    rows = json.loads(render_json(stats))
    assert [(r["id"], r["clade_solved"], r["clade_evaluated"], r["final"]) for r in rows] == [
        (1, 3, 5, False), (2, 2, 3, True), (3, 0, 0, False)]
    text = render_text(stats)
    assert "node 1  aaaaaaa  own 1/2  clade 3/5  CMP 0.60  children 1  failed expansions 1" in text
    assert "  node 2  bbbbbbb  own 2/3  clade 2/3  CMP 0.67" in text and "<- FINAL" in text
    dot = render_dot(stats)
    assert "n1 -> n2;" in dot and "n2 -> n3;" in dot
    console = Console(record=True, width=200)
    console.print(render_rich(stats))
    assert "add a test-running tool" in console.export_text()
    writer.close()


def test_flagged_verdicts_are_marked_and_counted(tmp_path: Path) -> None:
    from hgm.domain import VerdictFlag

    store = RunStore.create(tmp_path / "run", load_config())
    root = store.add_node(None, "a" * 40, "initial agent")
    _eval(store, root, "python__a", EvalStatus.SOLVED)
    for task in ("go__x", "rust__y"):
        store.finish_evaluation(store.start_evaluation(root, task), EvalOutcome(
            EvalStatus.FAILED, detail="suspected tampering: exit 0 but no report file report",
            flag=VerdictFlag.SUSPECTED_TAMPERING))
    stats = load(tmp_path / "run")
    assert (stats[1].solved, stats[1].evaluated, stats[1].suspected_tampering) == (1, 3, ["go__x", "rust__y"])
    assert "own 1/3" in render_text(stats) and "(!) suspected tampering 2" in render_text(stats)
    assert json.loads(render_json(stats))[0]["suspected_tampering"] == ["go__x", "rust__y"]
    console = Console(record=True, width=200)
    console.print(render_rich(stats))
    assert "(!) suspected tampering 2" in console.export_text()
    assert "suspected tampering 2" in render_dot(stats)
