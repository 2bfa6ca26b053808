"""The LLM ledger of a run store: every gateway exchange, recorded and read back.

Tables `llm_calls` and `llm_blobs` of run.sqlite (hgm/store.py creates them). A conversation costs
storage in proportion to its length, not its square (an agent sends its whole conversation with
every request): each message, and each request's other fields (model, tools, ...), is stored once
in `llm_blobs`, content-addressed; a call row names the call of the same session whose first
`prefix_len` messages it repeats (`prefix_call`) and lists only the blob ids of the messages after
them. `request(call_id)` rebuilds the request as it was sent (same messages, same keys and values).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from hgm.domain import LLMCallUsage, LLMExchange, Usage

_RECENT_SESSIONS = 512
"""Sessions whose last request the ledger remembers, to store the next one as a delta."""


class Read(Protocol):
    """The store's read: rows of one query, under its lock."""

    def __call__(self, sql: str, args: tuple[Any, ...] = ..., /) -> list[tuple[Any, ...]]: ...


Write = Callable[[], AbstractContextManager[sqlite3.Connection]]
"""The store's write: one transaction, under its lock (refused on a read-only store)."""


class LLMLedger:
    """The run's LLM calls, through its store's connection (its read, its write transaction, its lock)."""

    def __init__(self, read: Read, write: Write, lock: threading.RLock) -> None:
        self._read, self._write, self._lock = read, write, lock
        self._last_request: OrderedDict[str, tuple[int, list[bytes]]] = OrderedDict()
        """session -> (its last call id, that request's message hashes): what the next call may repeat."""

    def record(self, *, session: str, role: str, model: str, node_id: int | None, task_id: str | None,
               status: str, attempts: int, latency_s: float, prompt_tokens: int, completion_tokens: int,
               cached_tokens: int, cost_usd: float | None, request: Mapping[str, Any],
               response_json: str | None, error: str | None) -> int:
        """Record one gateway exchange (`request` as sent upstream; see the module docstring)."""
        messages = [_canonical(m) for m in request.get("messages") or []]
        hashes = [_digest(m) for m in messages]
        params = _canonical({k: v for k, v in request.items() if k != "messages"})
        with self._write() as c:
            prev_call, prev = self._last_request.get(session, (None, []))
            shared = 0
            for a, b in zip(prev, hashes, strict=False):  # the common prefix
                if a != b:
                    break
                shared += 1
            ids = [_blob(c, h, m) for h, m in zip(hashes[shared:], messages[shared:], strict=True)]
            cur = c.execute(
                "INSERT INTO llm_calls(created_at, session, role, model, node_id, task_id, status, attempts, "
                "latency_s, prompt_tokens, completion_tokens, cached_tokens, cost_usd, params, prefix_call, "
                "prefix_len, messages, response_json, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (time.time(), session, role, model, node_id, task_id, status, attempts, latency_s, prompt_tokens,
                 completion_tokens, cached_tokens, cost_usd, _blob(c, _digest(params), params),
                 prev_call if shared else None, shared, json.dumps(ids), response_json, error))
            call_id = _rowid(cur)
        with self._lock:
            self._last_request[session] = (call_id, hashes)
            self._last_request.move_to_end(session)
            if len(self._last_request) > _RECENT_SESSIONS:
                self._last_request.popitem(last=False)
        return call_id

    def request(self, call_id: int) -> dict[str, Any]:
        """The request of one LLM call, rebuilt from its blobs: what the gateway sent upstream."""
        chain: list[tuple[int, list[int]]] = []
        params: int | None = None
        link: int | None = call_id
        while link is not None:
            rows = self._read("SELECT params, prefix_call, prefix_len, messages FROM llm_calls WHERE id=?", (link,))
            if not rows:
                raise KeyError(f"no LLM call {link}")
            blob, link, prefix_len, ids = rows[0]
            params = blob if params is None else params
            chain.append((prefix_len, json.loads(ids)))
        blob_ids: list[int] = []
        for prefix_len, ids in reversed(chain):
            blob_ids = blob_ids[:prefix_len] + ids
        assert params is not None  # the loop read call_id's row
        wanted = [params, *blob_ids]
        marks = ",".join("?" * len(wanted))
        rows = self._read(f"SELECT id, body FROM llm_blobs WHERE id IN ({marks})", tuple(wanted))
        bodies: dict[int, str] = dict(rows)
        return {**json.loads(bodies[params]), "messages": [json.loads(bodies[i]) for i in blob_ids]}

    def usage(self, *, role: str | None = None, node_id: int | None = None, task_id: str | None = None) -> Usage:
        """Token and cost sums over the LLM calls matching every given filter."""
        conds, args = [], []
        for column, value in (("role", role), ("node_id", node_id), ("task_id", task_id)):
            if value is not None:
                conds.append(f"{column}=?")
                args.append(value)
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        return _usage(*self._read(f"SELECT {_USAGE_SUMS} FROM llm_calls {where}", tuple(args))[0])

    def usage_by_role(self) -> dict[str, Usage]:
        """Token and cost sums per role (one pass over the calls)."""
        rows = self._read(f"SELECT role, {_USAGE_SUMS} FROM llm_calls GROUP BY role ORDER BY role")
        return {r[0]: _usage(*r[1:]) for r in rows}

    def run_cap_refusal(self) -> str | None:
        """Why the run's budget refused an LLM call (its caps are spent for good), or None."""
        rows = self._read("SELECT error FROM llm_calls WHERE status='run_cap' ORDER BY id LIMIT 1")
        return rows[0][0] if rows else None

    def call_usage(self) -> list[LLMCallUsage]:
        """Every LLM call's time, role, node, task, tokens and cost, oldest first (usage over time)."""
        return [LLMCallUsage(*r) for r in self._read(
            "SELECT created_at, role, node_id, task_id, prompt_tokens, completion_tokens, cost_usd "
            "FROM llm_calls ORDER BY created_at, id")]

    def exchanges(self) -> list[LLMExchange]:
        """Every LLM call's session, place, status and answer, in call order (what `hgm replay` serves)."""
        return [LLMExchange(*r) for r in self._read(
            "SELECT id, created_at, session, role, node_id, task_id, status, attempts, response_json, error "
            "FROM llm_calls ORDER BY id")]


_USAGE_SUMS = ("COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0), "
               "COALESCE(SUM(cached_tokens),0), COALESCE(SUM(cost_usd),0), COALESCE(SUM(cost_usd IS NULL),0)")


def _usage(calls: int, prompt: int, completion: int, cached: int, cost: float, unknown: int) -> Usage:
    return Usage(calls, prompt, completion, cached, None if unknown else float(cost), float(cost))


def _canonical(value: Any) -> str:
    """One JSON text per value (keys in the order sent), so equal messages share one blob."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()[:16]


def _blob(c: sqlite3.Connection, digest: bytes, body: str) -> int:
    """The id of the blob with this content, stored now if new."""
    c.execute("INSERT OR IGNORE INTO llm_blobs(hash, body) VALUES (?, ?)", (digest, body))
    return int(c.execute("SELECT id FROM llm_blobs WHERE hash=?", (digest,)).fetchone()[0])




def _rowid(cur: sqlite3.Cursor) -> int:
    assert cur.lastrowid is not None
    return cur.lastrowid
