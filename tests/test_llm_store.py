"""The run store's LLM calls: each message stored once, every request rebuilt exactly, usage sums."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from hgm.config import load_config
from hgm.store import RunStore

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "run a command " * 20,
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def store(tmp_path: Path):
    s = RunStore.create(tmp_path / "run", load_config())
    yield s
    s.close()


def record(store: RunStore, session: str, request: dict, **kw) -> int:
    args = dict(session=session, role="downstream", model="m", node_id=1, task_id="t", status="ok", attempts=1,
                latency_s=0.1, prompt_tokens=10, completion_tokens=5, cached_tokens=0, cost_usd=0.001,
                request=request, response_json='{"choices": []}', error=None)
    return store.llm.record(**(args | kw))


def conversation(steps: int, output: str = "line of tool output\n" * 50) -> list[dict]:
    """The requests an agent sends over `steps` steps: each one the whole conversation so far."""
    messages: list[dict] = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": "Fix it."}]
    requests = []
    for i in range(steps):
        requests.append({"model": "m", "messages": copy.deepcopy(messages), "tools": TOOLS})
        call = {
            "id": f"c{i}",
            "type": "function",
            "function": {"name": "bash", "arguments": f'{{"command": "ls {i}"}}'},
        }
        messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": f"c{i}", "content": f"step {i}\n{output}"}]
    return requests


def stored_bytes(store: RunStore) -> int:
    """What the LLM tables hold: blob bodies and per-call message references."""
    blobs = store._read("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM llm_blobs")[0][0]
    refs = store._read("SELECT COALESCE(SUM(LENGTH(messages)), 0) FROM llm_calls")[0][0]
    return blobs + refs


def test_every_request_is_rebuilt_exactly(store: RunStore) -> None:
    requests = conversation(12)
    ids = [record(store, "s1-downstream", r) for r in requests]
    for call_id, request in zip(ids, requests, strict=True):
        rebuilt = store.llm.request(call_id)
        assert rebuilt == request
        assert [list(m) for m in rebuilt["messages"]] == [list(m) for m in request["messages"]]  # key order too
    distinct = {str(m) for r in requests for m in r["messages"]}
    assert store._read("SELECT COUNT(*) FROM llm_blobs")[0][0] == len(distinct) + 1  # + the one params blob


def test_storage_grows_linearly_with_the_conversation(store: RunStore, tmp_path: Path) -> None:
    sizes = {}
    for steps in (20, 40, 80):
        s = RunStore.create(tmp_path / f"run{steps}", load_config())
        for r in conversation(steps):
            record(s, "s1-downstream", r)
        sizes[steps] = stored_bytes(s)
        s.close()
    raw_final = len(str(conversation(80)[-1]["messages"]))
    assert sizes[80] / sizes[40] == pytest.approx(2, rel=0.1) and sizes[40] / sizes[20] == pytest.approx(2, rel=0.15)
    assert sizes[80] < 1.5 * raw_final, "about the size of the conversation, not of every request summed"


def test_edited_history_interleaved_sessions_and_a_reopened_store(store: RunStore, tmp_path: Path) -> None:
    a, b = conversation(6), conversation(6, output="other output\n")
    edited = copy.deepcopy(a[5])
    edited["messages"][3]["content"] = "[output elided]"  # an agent shortening its history
    ids = []
    for ra, rb in zip(a, b, strict=True):
        ids += [(record(store, "s1-downstream", ra), ra), (record(store, "s2-downstream", rb), rb)]
    ids.append((record(store, "s1-downstream", edited), edited))
    shorter = {**a[5], "messages": a[5]["messages"][:3], "temperature": 0}
    ids.append((record(store, "s1-downstream", shorter, status="run_cap", error="run token budget exhausted"), shorter))
    store.close()
    reopened = RunStore.open(tmp_path / "run")
    ids.append((record(reopened, "s1-downstream", a[5]), a[5]))  # session names repeat after a resume
    for call_id, request in ids:
        assert reopened.llm.request(call_id) == request
    assert reopened.llm.run_cap_refusal() == "run token budget exhausted"
    reopened.close()


def test_usage_by_role_matches_the_filtered_sums(store: RunStore) -> None:
    record(store, "s1", {"messages": []}, role="downstream", prompt_tokens=10, cost_usd=0.5)
    record(store, "s2", {"messages": []}, role="diagnose", prompt_tokens=7, cost_usd=None)
    record(store, "s2", {"messages": []}, role="diagnose", prompt_tokens=3, cost_usd=0.25)
    by_role = store.llm.usage_by_role()
    assert by_role == {role: store.llm.usage(role=role) for role in ("downstream", "diagnose")}
    assert by_role["diagnose"].cost_usd is None and by_role["diagnose"].known_cost_usd == 0.25
    assert by_role["diagnose"].prompt_tokens == 10 and store.llm.run_cap_refusal() is None
