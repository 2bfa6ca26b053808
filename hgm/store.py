"""The run store: one SQLite file (WAL) per run directory, the single source of truth of a run.

Tables: `meta` (format, schema version, resolved config), `nodes`, `evaluations`, `expansions`,
`dispatches`, `llm_calls`, `llm_blobs`, and the steering tables `interventions` and `agent_requests`
(hgm/steering.py), which `hgm steer` writes while the run's own process may be writing too (WAL,
short transactions, a 30 s busy timeout). Every write is its own transaction, so a process killed
at any moment leaves every finished result on disk. Work that was in flight when the process died
stays as an `in_flight` row; the next writable `open` marks it `infra_error` (error_type
`Interrupted`), so it neither counts for or against an agent nor in the budget and the search
re-decides it.

Exactly once. An evaluation or expansion row is a job; each time the scheduler hands it to an
executor it opens a dispatch (kind, row id, attempt) in `dispatches` first. A result is committed
(`finish_*`) in one transaction with the closing of its dispatch, and only while that dispatch is
open: a duplicate delivery, or a late result of an attempt that was since declared lost and
redone (`redispatch`), finds it closed and is dropped. Its LLM calls are in `llm_calls` anyway.

One connection guarded by a lock serves every thread of `hgm run`: the scheduler, which alone
writes results, and the gateway's request threads, which record LLM calls (jobs never touch the
store). SQLite serializes writers anyway, and the lock keeps each read-modify-write atomic.

The LLM calls (`llm_calls`, `llm_blobs`) are read and written through `RunStore.llm`, an
LLMLedger (hgm/llm_ledger.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from pydantic import ValidationError

from hgm.config import HGMConfig, dump_config
from hgm.domain import (
    DispatchRow,
    DispatchState,
    ErrorType,
    EvalOutcome,
    EvalStatus,
    EvaluationRow,
    ExpansionOutcome,
    ExpansionRow,
    ExpansionStatus,
    JobKind,
    MetaKey,
    NodeRow,
    VerdictFlag,
)
from hgm.errors import UserError
from hgm.llm_ledger import LLMLedger
from hgm.steering import Action, AgentRequest, Intervention, RequestKind, decode_payload, encode_payload

DB_NAME = "run.sqlite"
STORE_FORMAT = "hgm-run-store"
SCHEMA_VERSION = 3
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE nodes (
  id INTEGER PRIMARY KEY AUTOINCREMENT, parent_id INTEGER REFERENCES nodes(id),
  commit_sha TEXT, message TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE evaluations (
  id INTEGER PRIMARY KEY AUTOINCREMENT, node_id INTEGER NOT NULL REFERENCES nodes(id),
  task_id TEXT NOT NULL, status TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
  agent_s REAL, test_s REAL, cost_usd REAL, prompt_tokens INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0, error_type TEXT, error TEXT, log_dir TEXT,
  detail TEXT, flag TEXT, score REAL);
CREATE INDEX evaluations_node ON evaluations(node_id);
CREATE TABLE expansions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, parent_id INTEGER NOT NULL REFERENCES nodes(id),
  child_id INTEGER REFERENCES nodes(id), status TEXT NOT NULL, commit_sha TEXT,
  message TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', entry_task TEXT,
  started_at REAL NOT NULL, finished_at REAL, cost_usd REAL, error_type TEXT, error TEXT, log_dir TEXT);
CREATE INDEX expansions_parent ON expansions(parent_id);
CREATE TABLE dispatches (
  kind TEXT NOT NULL, row_id INTEGER NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL,
  opened_at REAL NOT NULL, closed_at REAL, reason TEXT, PRIMARY KEY (kind, row_id, attempt));
CREATE TABLE llm_blobs (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE TABLE llm_calls (
  id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, session TEXT NOT NULL,
  role TEXT NOT NULL, model TEXT NOT NULL, node_id INTEGER, task_id TEXT, status TEXT NOT NULL,
  attempts INTEGER NOT NULL, latency_s REAL NOT NULL, prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL, cost_usd REAL,
  params INTEGER NOT NULL REFERENCES llm_blobs(id), prefix_call INTEGER REFERENCES llm_calls(id),
  prefix_len INTEGER NOT NULL, messages TEXT NOT NULL, response_json TEXT, error TEXT);
CREATE INDEX llm_calls_node ON llm_calls(node_id, task_id);
"""
_STEERING_SCHEMA = """
CREATE TABLE IF NOT EXISTS interventions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
  node_id INTEGER, payload TEXT NOT NULL DEFAULT '{}', why TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS agent_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, expansion_id INTEGER NOT NULL,
  node_id INTEGER NOT NULL, kind TEXT NOT NULL, what TEXT NOT NULL, why TEXT NOT NULL DEFAULT '');
"""
"""Steering (hgm/steering.py): created on every writable open too, so older stores get the tables."""
_RECENT_SESSIONS = 512
"""Sessions whose last request the store remembers, to store the next one as a delta."""

_EVAL_COLS = "id, node_id, task_id, status, started_at, finished_at, agent_s, test_s, cost_usd, " \
    "prompt_tokens, completion_tokens, error_type, error, log_dir, detail, flag, score"
_ADDED_COLUMNS = (("evaluations", "score", "REAL"),)
"""Columns added since the schema version: older stores get them when opened for writing (and read as
NULL when opened read-only)."""
_EXP_COLS = "id, parent_id, child_id, status, commit_sha, message, reason, entry_task, started_at, " \
    "finished_at, cost_usd, error_type, error, log_dir"


class RunStore:
    """SQLite (WAL) run store at RUN_DIR/run.sqlite, safe to use from several threads."""

    def __init__(self, run_dir: Path, conn: sqlite3.Connection, config: HGMConfig, readonly: bool) -> None:
        self.run_dir = run_dir
        self.config = config
        self.readonly = readonly
        self._conn = conn
        self._lock = threading.RLock()
        self._eval_cols = _EVAL_COLS
        self.llm = LLMLedger(self._read, self._write, self._lock)
        """The LLM calls: recording (the gateway's recorder) and reading (usage, requests, answers)."""

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, config: HGMConfig) -> RunStore:
        """Start a new run in `run_dir` (created if needed); UserError if it already holds one."""
        run_dir = Path(run_dir)
        db = run_dir / DB_NAME
        if db.exists():
            raise UserError(f"{run_dir} already holds a run; resume it with `hgm run --resume {run_dir}` "
                            "or choose another directory")
        run_dir.mkdir(parents=True, exist_ok=True)
        conn = _connect(db, readonly=False)
        with conn:  # schema and meta in one transaction: a kill leaves a whole store or an empty file
            conn.executescript("BEGIN;" + _SCHEMA + _STEERING_SCHEMA)
            conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", [
                (MetaKey.FORMAT, STORE_FORMAT), (MetaKey.SCHEMA_VERSION, str(SCHEMA_VERSION)),
                (MetaKey.CONFIG, config.model_dump_json()), (MetaKey.CREATED_AT, repr(time.time()))])
        (run_dir / "config.yaml").write_text(dump_config(config))
        return cls(run_dir, conn, config, readonly=False)

    @classmethod
    def open(cls, run_dir: Path, *, readonly: bool = False, live: bool = False) -> RunStore:
        """Open an existing run. A writable open marks work left in flight as interrupted, unless
        `live`: then another process may be running it (`hgm steer`, `hgm serve` add interventions)."""
        run_dir = Path(run_dir)
        db = run_dir / DB_NAME
        if not db.is_file():
            raise UserError(f"no hgm run in {run_dir} (missing {DB_NAME}); start one with `hgm run`")
        conn = None
        try:
            conn = _connect(db, readonly=readonly)
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            if conn is not None:
                conn.close()
            raise UserError(f"{db} is not a readable hgm run store ({e}); point to a run directory "
                            "made by `hgm run`") from None
        if meta.get(MetaKey.FORMAT) != STORE_FORMAT:
            conn.close()
            raise UserError(f"{db} is an SQLite file but not an hgm run store")
        version = int(meta.get(MetaKey.SCHEMA_VERSION, "0"))
        if version != SCHEMA_VERSION:
            conn.close()
            raise UserError(f"{db} has store schema version {version}; this hgm reads version "
                            f"{SCHEMA_VERSION}. Use the hgm version that wrote it.")
        try:
            config = HGMConfig.model_validate_json(meta[MetaKey.CONFIG])
        except (KeyError, ValidationError) as e:
            conn.close()
            raise UserError(f"{db} holds no valid run config ({e})") from None
        store = cls(run_dir, conn, config, readonly)
        store._add_columns()
        if not readonly:
            with store._write() as c:
                c.executescript(_STEERING_SCHEMA)
            if not live:
                store._reset_in_flight()
        return store

    def _add_columns(self) -> None:
        for table, column, kind in _ADDED_COLUMNS:
            if column in {r[1] for r in self._read(f"PRAGMA table_info({table})")}:
                continue
            if self.readonly:
                self._eval_cols = self._eval_cols.replace(f", {column}", f", NULL AS {column}")
            else:
                with self._write() as c:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reset_in_flight(self) -> None:
        now = time.time()
        reason = "the process stopped while this was in flight; redone on resume"
        with self._write() as c:
            c.execute("UPDATE evaluations SET status=?, finished_at=?, error_type=?, error=? WHERE status=?",
                      (EvalStatus.INFRA_ERROR, now, ErrorType.INTERRUPTED, reason, EvalStatus.IN_FLIGHT))
            c.execute("UPDATE expansions SET status=?, finished_at=?, error_type=?, error=? WHERE status=?",
                      (ExpansionStatus.INFRA_ERROR, now, ErrorType.INTERRUPTED, reason, ExpansionStatus.IN_FLIGHT))
            c.execute("UPDATE dispatches SET state=?, closed_at=?, reason=? WHERE state=?",
                      (DispatchState.INTERRUPTED, now, reason, DispatchState.OPEN))

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise RuntimeError("this run store was opened read-only")
        with self._lock, self._conn:
            yield self._conn

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # -- meta ------------------------------------------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        with self._write() as c:
            c.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                      "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    # -- nodes -----------------------------------------------------------------------------
    def add_node(self, parent_id: int | None, commit: str | None, message: str = "") -> int:
        with self._write() as c:
            return _insert_node(c, parent_id, commit, message)

    def nodes(self) -> list[NodeRow]:
        return [NodeRow(*r) for r in self._read(
            "SELECT id, parent_id, commit_sha, message, created_at FROM nodes ORDER BY id")]

    # -- evaluations -----------------------------------------------------------------------
    def start_evaluation(self, node_id: int, task_id: str) -> int:
        """A new in-flight evaluation with its first dispatch (attempt 1) open."""
        with self._write() as c:
            cur = c.execute("INSERT INTO evaluations(node_id, task_id, status, started_at) VALUES (?,?,?,?)",
                            (node_id, task_id, EvalStatus.IN_FLIGHT, time.time()))
            eval_id = _rowid(cur)
            _open_dispatch(c, JobKind.EVAL, eval_id, 1)
            return eval_id

    def finish_evaluation(self, eval_id: int, outcome: EvalOutcome, attempt: int = 1) -> bool:
        """Commit the outcome of dispatch `attempt`; False (nothing written) if it is not open."""
        if outcome.status == EvalStatus.IN_FLIGHT:
            raise ValueError("an evaluation cannot finish as in_flight")
        o = outcome
        with self._write() as c:
            if not _close_dispatch(c, JobKind.EVAL, eval_id, attempt, DispatchState.DONE, None):
                return False
            cur = c.execute(
                "UPDATE evaluations SET status=?, finished_at=?, agent_s=?, test_s=?, cost_usd=?, "
                "prompt_tokens=?, completion_tokens=?, error_type=?, error=?, log_dir=?, detail=?, flag=?, score=? "
                "WHERE id=? AND status=?",
                (EvalStatus(o.status), time.time(), o.agent_s, o.test_s, o.cost_usd, o.prompt_tokens,
                 o.completion_tokens, o.error_type, o.error, o.log_dir, o.detail, o.flag, o.score, eval_id,
                 EvalStatus.IN_FLIGHT))
            if cur.rowcount != 1:
                raise ValueError(f"evaluation {eval_id} has an open dispatch but is not in flight")
            return True

    def evaluations(self, node_id: int | None = None) -> list[EvaluationRow]:
        where, args = ("WHERE node_id=?", (node_id,)) if node_id is not None else ("", ())
        rows = self._read(f"SELECT {self._eval_cols} FROM evaluations {where} ORDER BY id", args)
        return [EvaluationRow(*(*r[:3], EvalStatus(r[3]), *r[4:15], VerdictFlag(r[15]) if r[15] else None, r[16]))
                for r in rows]

    # -- expansions ------------------------------------------------------------------------
    def start_expansion(self, parent_id: int) -> int:
        """A new in-flight expansion with its first dispatch (attempt 1) open."""
        with self._write() as c:
            cur = c.execute("INSERT INTO expansions(parent_id, status, started_at) VALUES (?,?,?)",
                            (parent_id, ExpansionStatus.IN_FLIGHT, time.time()))
            expansion_id = _rowid(cur)
            _open_dispatch(c, JobKind.EXPAND, expansion_id, 1)
            return expansion_id

    def finish_expansion(self, expansion_id: int, outcome: ExpansionOutcome, attempt: int = 1) -> int | None:
        """Commit the outcome of dispatch `attempt`; a committed expansion adds its child node in the
        same transaction (returned). None, and nothing written, if that dispatch is not open."""
        o = outcome
        if o.status == ExpansionStatus.IN_FLIGHT:
            raise ValueError("an expansion cannot finish as in_flight")
        with self._write() as c:
            if not _close_dispatch(c, JobKind.EXPAND, expansion_id, attempt, DispatchState.DONE, None):
                return None
            rows = c.execute("SELECT parent_id FROM expansions WHERE id=? AND status=?",
                             (expansion_id, ExpansionStatus.IN_FLIGHT)).fetchall()
            if not rows:
                raise ValueError(f"expansion {expansion_id} has an open dispatch but is not in flight")
            child = None
            if o.status == ExpansionStatus.COMMITTED:
                child = _insert_node(c, rows[0][0], o.commit, o.message)
            c.execute(
                "UPDATE expansions SET status=?, child_id=?, commit_sha=?, message=?, reason=?, entry_task=?, "
                "finished_at=?, cost_usd=?, error_type=?, error=?, log_dir=? WHERE id=?",
                (ExpansionStatus(o.status), child, o.commit, o.message, o.reason, o.entry_task, time.time(),
                 o.cost_usd, o.error_type, o.error, o.log_dir, expansion_id))
            return child

    def expansions(self, parent_id: int | None = None) -> list[ExpansionRow]:
        where, args = ("WHERE parent_id=?", (parent_id,)) if parent_id is not None else ("", ())
        rows = self._read(f"SELECT {_EXP_COLS} FROM expansions {where} ORDER BY id", args)
        return [ExpansionRow(*(*r[:3], ExpansionStatus(r[3]), *r[4:])) for r in rows]

    # -- dispatches ------------------------------------------------------------------------
    def is_open(self, kind: JobKind, row_id: int, attempt: int) -> bool:
        """Whether dispatch (kind, row_id, attempt) still waits for its result."""
        return bool(self._read("SELECT 1 FROM dispatches WHERE kind=? AND row_id=? AND attempt=? AND state=?",
                               (kind, row_id, attempt, DispatchState.OPEN)))

    def redispatch(self, kind: JobKind, row_id: int, attempt: int, reason: str) -> int | None:
        """Close dispatch `attempt` as lost (its worker died) and open attempt + 1 of the same job,
        in one transaction; the new attempt, or None if `attempt` was not open."""
        with self._write() as c:
            if not _close_dispatch(c, kind, row_id, attempt, DispatchState.LOST, reason):
                return None
            _open_dispatch(c, kind, row_id, attempt + 1)
            return attempt + 1

    def dispatches(self, kind: JobKind | None = None) -> list[DispatchRow]:
        where, args = ("WHERE kind=?", (kind,)) if kind is not None else ("", ())
        rows = self._read("SELECT kind, row_id, attempt, state, opened_at, closed_at, reason FROM dispatches "
                          f"{where} ORDER BY opened_at, kind, row_id, attempt", args)
        return [DispatchRow(JobKind(r[0]), r[1], r[2], DispatchState(r[3]), *r[4:]) for r in rows]

    # -- steering (hgm/steering.py) --------------------------------------------------------
    def add_intervention(self, who: str, action: Action, node_id: int | None = None,
                         payload: dict[str, Any] | None = None, why: str = "") -> int:
        """Record what a person did (one short transaction: safe beside a live run's writer). A pin or
        a hint notes the last expansion so far (`after_expansion`): it is about the rewrites after it."""
        payload = dict(payload or {})
        with self._write() as c:
            if action in (Action.PIN, Action.HINT):
                payload["after_expansion"] = c.execute("SELECT COALESCE(MAX(id), 0) FROM expansions").fetchone()[0]
            cur = c.execute("INSERT INTO interventions(created_at, who, action, node_id, payload, why) "
                            "VALUES (?,?,?,?,?,?)", (time.time(), who, Action(action), node_id,
                                                     encode_payload(payload), why))
            return _rowid(cur)

    def interventions(self, after_id: int = 0) -> list[Intervention]:
        """Interventions with an id above `after_id`, oldest first."""
        rows = self._read_steering("SELECT id, created_at, who, action, node_id, payload, why FROM interventions "
                                   "WHERE id>? ORDER BY id", (after_id,))
        return [Intervention(r[0], r[1], r[2], Action(r[3]), r[4], decode_payload(r[5]), r[6]) for r in rows]

    def add_agent_request(self, expansion_id: int, node_id: int, kind: RequestKind, what: str, why: str) -> int:
        with self._write() as c:
            cur = c.execute("INSERT INTO agent_requests(created_at, expansion_id, node_id, kind, what, why) "
                            "VALUES (?,?,?,?,?,?)", (time.time(), expansion_id, node_id, RequestKind(kind), what, why))
            return _rowid(cur)

    def agent_requests(self) -> list[AgentRequest]:
        rows = self._read_steering("SELECT id, created_at, expansion_id, node_id, kind, what, why FROM agent_requests "
                                   "ORDER BY id")
        return [AgentRequest(*(*r[:4], RequestKind(r[4]), *r[5:])) for r in rows]

    def _read_steering(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._read(sql, args)
        except sqlite3.OperationalError as e:  # a store from before steering, opened read-only
            if "no such table" in str(e):
                return []
            raise


def _connect(db: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False, timeout=30)
    else:
        conn = sqlite3.connect(db, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed result survives a power cut too, not only a killed process.
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _open_dispatch(c: sqlite3.Connection, kind: JobKind, row_id: int, attempt: int) -> None:
    c.execute("INSERT INTO dispatches(kind, row_id, attempt, state, opened_at) VALUES (?,?,?,?,?)",
              (kind, row_id, attempt, DispatchState.OPEN, time.time()))


def _close_dispatch(c: sqlite3.Connection, kind: JobKind, row_id: int, attempt: int, state: DispatchState,
                    reason: str | None) -> bool:
    cur = c.execute("UPDATE dispatches SET state=?, closed_at=?, reason=? WHERE kind=? AND row_id=? AND attempt=? "
                    "AND state=?", (state, time.time(), reason, kind, row_id, attempt, DispatchState.OPEN))
    return cur.rowcount == 1


def _insert_node(c: sqlite3.Connection, parent_id: int | None, commit: str | None, message: str) -> int:
    cur = c.execute("INSERT INTO nodes(parent_id, commit_sha, message, created_at) VALUES (?,?,?,?)",
                    (parent_id, commit, message, time.time()))
    return _rowid(cur)


def _rowid(cur: sqlite3.Cursor) -> int:
    assert cur.lastrowid is not None
    return cur.lastrowid


__all__ = ["DB_NAME", "SCHEMA_VERSION", "RunStore"]
