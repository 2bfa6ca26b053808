"""Expansion pieces that need no sandbox: the JSON plan parser, the entry task, the lineage."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from hgm.config import load_config
from hgm.domain import EvalOutcome, EvalStatus, ExpansionOutcome, ExpansionStatus
from hgm.expand import agent_source, choose_entry_task, lineage, parse_diagnosis
from hgm.store import RunStore

PLAN = {"log_summary": "it never ran the tests", "root_cause": "no test step", "improvement": "run tests",
        "implementation": "edit prompts.py", "problem_statement": "Make the agent run the tests.", "title": "run tests"}


@pytest.mark.parametrize("text", [
    json.dumps(PLAN),
    "Here is my analysis.\n```json\n" + json.dumps(PLAN, indent=2) + "\n```\nGood luck.",
    "Sure! " + json.dumps(PLAN) + " -- hope that helps {not json}",
])
def test_plan_is_found_in_fenced_or_bare_json(text: str) -> None:
    assert parse_diagnosis(text) == PLAN


def test_missing_fields_get_defaults_but_a_statement_is_required() -> None:
    plan = parse_diagnosis('{"problem_statement": "Add a retry.", "improvement": "retry on errors\\nmore"}')
    assert plan["title"] == "retry on errors" and plan["root_cause"] == "(not given)"
    with pytest.raises(ValueError, match="problem_statement"):
        parse_diagnosis('{"root_cause": "x"}')
    with pytest.raises(ValueError, match="no JSON object"):
        parse_diagnosis("I think the agent should run tests.")
    with pytest.raises(ValueError, match="no JSON object"):
        parse_diagnosis('```json\n{"problem_statement": "x", oops}\n```')


def _eval(store: RunStore, node: int, task: str, status: EvalStatus) -> None:
    store.finish_evaluation(
        store.start_evaluation(node, task), EvalOutcome(status, log_dir=f"nodes/{node}/evals/{task}")
    )


def test_entry_task_prefers_own_failures_then_ancestors_then_unsolved(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", load_config())
    root = store.add_node(None, "a" * 40, "initial agent")
    tasks = ["python__a", "python__b", "python__c"]
    rng = random.Random(0)
    task, ev = choose_entry_task(store, root, tasks, rng)  # nothing evaluated: an unsolved task, no logs
    assert task in tasks and ev is None
    _eval(store, root, "python__a", EvalStatus.SOLVED)
    _eval(store, root, "python__b", EvalStatus.EMPTY_PATCH)
    _eval(store, root, "python__c", EvalStatus.INFRA_ERROR)
    for _ in range(5):
        task, ev = choose_entry_task(store, root, tasks, rng)
        assert task == "python__b" and ev is not None and ev.status == EvalStatus.EMPTY_PATCH
    child = store.finish_expansion(store.start_expansion(root), ExpansionOutcome(
        ExpansionStatus.COMMITTED, commit="b" * 40, message="run tests\n\nWhy: ..."))
    assert child is not None
    _eval(store, child, "python__a", EvalStatus.SOLVED)
    task, ev = choose_entry_task(store, child, tasks, rng)  # no own failure: the parent's
    assert task == "python__b" and ev is not None and ev.node_id == root
    _eval(store, child, "python__c", EvalStatus.FAILED)
    assert choose_entry_task(store, child, tasks, rng)[0] == "python__c"


def test_lineage_names_changes_scores_and_rejected_rewrites(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", load_config())
    root = store.add_node(None, "a" * 40, "initial agent")
    _eval(store, root, "python__a", EvalStatus.SOLVED)
    _eval(store, root, "python__b", EvalStatus.FAILED)
    child = store.finish_expansion(store.start_expansion(root), ExpansionOutcome(
        ExpansionStatus.COMMITTED, commit="b" * 40, message="Add a test tool\n\nWhy: it never tested"))
    store.finish_expansion(store.start_expansion(child), ExpansionOutcome(
        ExpansionStatus.FAILED, reason="validation failed: own tests (exit 1)"))
    text = lineage(store, child)
    assert "node 1: the initial agent\n  score: solved 1 of 2" in text
    assert "node 2: Add a test tool Why: it never tested\n  score: solved 0 of 0" in text
    assert "rejected" in text and "validation failed: own tests" in text


def test_agent_source_includes_code_not_caches(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "coding_agent.py").write_text("print(1)\n")
    (tmp_path / "tools" / "bash.py").write_text("x" * 50_000)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.py").write_text("junk")
    text = agent_source(tmp_path)
    assert "## coding_agent.py" in text and "## tools/bash.py" in text and "junk" not in text
    assert "characters cut" in text and len(text) < 25_000
