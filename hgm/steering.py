"""Steering is data: what a person does to a run is a row in its store, read by the scheduler.

`hgm steer` and `hgm serve` add `Intervention` rows (veto, pin, hint, pause, resume, budget, note,
approve, reject, grant, decline) to a live or stopped run; the scheduler (hgm/search.py) reads the
new rows at each decision and folds them into a `Steering` state, and rebuilds that state from all
rows on resume. Nothing a person does lives only in memory, so a SIGKILL, `--resume` and the Ray
executor (whose scheduler is the head's) keep it.

What each action does at the scheduler's next decision:
- veto NODE: never expanded or evaluated again, nor named final (work already in flight finishes;
  its counters, and its clade's, stay as they are).
- pin NODE (count K): the parent of the next K rewrites, over the policy's choice.
- hint NODE TEXT: added to the diagnosis prompt of NODE's next rewrite (hgm/expand.py).
- pause / resume: no new job starts while paused (work in flight finishes; the run waits).
- budget +N: N more task evaluations.
- note TEXT: recorded, nothing else.
- approve / reject NODE: with steer.approve = rewrites every new child waits (neither evaluated nor
  chosen as a parent) until one of these; a rejected child is treated like a vetoed one.
- grant / decline REQUEST: answer an agent's request (`AgentRequest`, see hgm/expand.py).
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    VETO = "veto"
    PIN = "pin"
    HINT = "hint"
    PAUSE = "pause"
    RESUME = "resume"
    BUDGET = "budget"
    NOTE = "note"
    APPROVE = "approve"
    REJECT = "reject"
    GRANT = "grant"
    DECLINE = "decline"


NODE_ACTIONS = frozenset({Action.VETO, Action.PIN, Action.HINT, Action.APPROVE, Action.REJECT})
"""Actions that name a node."""
TIMEOUT_WHO = "timeout"
"""`who` of an approval or rejection made by steer.approve_timeout_s, not a person."""


class RequestKind(StrEnum):
    PACKAGE = "package"
    """A Python package: granted, it may appear in later rewrites' requirements.txt."""
    FILE = "file"
    """A data file: granted with a host path, it is mounted read-only into later rewrites' sandboxes."""
    TOOL = "tool"
    """A program: granted, the agent is told so (the person makes it available on the host)."""
    TIME = "time"
    """More time: granted, the agent is told so (the person raises sandbox.agent_timeout_s on resume)."""


@dataclass(frozen=True)
class Intervention:
    """One thing a person (or the approval timeout) did to a run."""

    id: int
    created_at: float
    who: str
    """user@host, a --who, or `timeout`."""
    action: Action
    node_id: int | None
    payload: dict[str, Any]
    """pin: {"count"}, hint and note: {"text"}, budget: {"evals"}, grant / decline: {"request", "path"?}."""
    why: str

    def describe(self) -> str:
        p = self.payload
        target = f" node {self.node_id}" if self.node_id is not None else ""
        detail = {Action.PIN: f" for {p.get('count', 1)} rewrite(s)", Action.BUDGET: f" +{p.get('evals')} evaluations",
                  Action.HINT: f": {p.get('text', '')}", Action.NOTE: f": {p.get('text', '')}",
                  Action.GRANT: f" request {p.get('request')}" + (f" as {p['path']}" if p.get("path") else ""),
                  Action.DECLINE: f" request {p.get('request')}"}.get(self.action, "")
        return f"{self.action.value}{target}{detail}" + (f" (why: {self.why})" if self.why else "")


@dataclass(frozen=True)
class AgentRequest:
    """Something a rewriting agent asked for through its requests file (hgm/expand.py)."""

    id: int
    created_at: float
    expansion_id: int
    node_id: int
    """The agent that asked (the parent being rewritten)."""
    kind: RequestKind
    what: str
    why: str


def default_who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def encode_payload(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True)


def decode_payload(text: str) -> dict[str, Any]:
    value = json.loads(text or "{}")
    return value if isinstance(value, dict) else {}


@dataclass
class Steering:
    """The interventions folded into what the scheduler needs (`apply` each row, oldest first)."""

    gate: bool = False
    """steer.approve = rewrites: new children wait for approval."""
    last_id: int = 0
    vetoed: set[int] = field(default_factory=set)
    approved: set[int] = field(default_factory=set)
    rejected: set[int] = field(default_factory=set)
    pins: dict[int, Intervention] = field(default_factory=dict)
    """Node -> its latest pin."""
    paused: bool = False
    extra_evals: int = 0

    def apply(self, row: Intervention) -> None:
        self.last_id = max(self.last_id, row.id)
        node = row.node_id
        if row.action == Action.VETO and node is not None:
            self.vetoed.add(node)
        elif row.action == Action.PIN and node is not None:
            self.pins[node] = row
        elif row.action == Action.PAUSE:
            self.paused = True
        elif row.action == Action.RESUME:
            self.paused = False
        elif row.action == Action.BUDGET:
            self.extra_evals += int(row.payload.get("evals", 0))
        elif row.action == Action.APPROVE and node is not None and node not in self.rejected:
            self.approved.add(node)
        elif row.action == Action.REJECT and node is not None and node not in self.approved:
            self.rejected.add(node)

    def pending(self, node_id: int, root_id: int) -> bool:
        """A child still waiting for a person's approval."""
        return self.gate and node_id != root_id and node_id not in self.approved and node_id not in self.rejected

    def blocked(self, node_ids: list[int], root_id: int) -> set[int]:
        """Of these nodes, those the scheduler must neither evaluate nor expand now."""
        return {i for i in node_ids if i in self.vetoed or i in self.rejected or self.pending(i, root_id)}




def folded(rows: list[Intervention], gate: bool) -> Steering:
    """The state after `rows` (oldest first)."""
    state = Steering(gate=gate)
    for row in rows:
        state.apply(row)
    return state


def answers(rows: list[Intervention]) -> dict[int, Intervention]:
    """Request id -> the grant or decline that answered it (the first one)."""
    out: dict[int, Intervention] = {}
    for row in rows:
        if row.action in (Action.GRANT, Action.DECLINE):
            out.setdefault(int(row.payload.get("request", 0)), row)
    return out




REQUESTS_FILE = "hgm_requests.json"
"""Where a rewriting agent writes its requests: in its session directory, beside the statement
(the self-improve statement gives the path). A JSON list of {"kind", "what", "why"}."""
REQUESTS_ENV = "HGM_REQUESTS_FILE"
"""The environment variable that holds that path in a rewriting agent's sandbox."""
MAX_REQUESTS = 10
"""Requests taken from one rewrite (the file is the agent's: untrusted, read as data only)."""


def parse_requests(text: str) -> tuple[list[tuple[RequestKind, str, str]], list[str]]:
    """The requests in an agent's requests file, and what was wrong with the rest."""
    try:
        data = json.loads(text)
    except ValueError as e:
        return [], [f"not JSON ({e})"]
    items = data if isinstance(data, list) else [data]
    found: list[tuple[RequestKind, str, str]] = []
    problems: list[str] = []
    for item in items[:MAX_REQUESTS]:
        kind = item.get("kind") if isinstance(item, dict) else None
        what = item.get("what") if isinstance(item, dict) else None
        if kind not in set(RequestKind) or not isinstance(what, str) or not what.strip():
            problems.append(f"skipped {str(item)[:200]!r}: needs kind (one of {', '.join(RequestKind)}) and what")
            continue
        why = item.get("why")
        found.append((RequestKind(kind), what.strip()[:500], str(why or "").strip()[:2000]))
    if len(items) > MAX_REQUESTS:
        problems.append(f"only the first {MAX_REQUESTS} requests are taken")
    return found, problems


__all__ = [
    "MAX_REQUESTS",
    "NODE_ACTIONS",
    "REQUESTS_ENV",
    "REQUESTS_FILE",
    "TIMEOUT_WHO",
    "Action",
    "AgentRequest",
    "Intervention",
    "RequestKind",
    "Steering",
    "answers",
    "decode_payload",
    "default_who",
    "encode_payload",
    "folded",
    "parse_requests",
]
