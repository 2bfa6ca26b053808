"""Cassettes: every gateway exchange as one JSON line, replayable without any upstream.

A line holds `key` (hash of the model name and the request as sent upstream), `model`,
`request`, `status` and `response`. Replay answers a request with the next unused exchange
of the same key (identical requests replay in recorded order); a request with no recorded
exchange is a miss (the gateway reports it as an upstream failure).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, Literal

from hgm.errors import UserError


def exchange_key(model: str, request: dict[str, Any]) -> str:
    """Stable hash of what identifies an exchange (model name + request body without `model`)."""
    body = {k: v for k, v in request.items() if k != "model"}
    canonical = json.dumps({"model": model, "request": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Cassette:
    """A JSONL cassette in record or replay mode. Thread-safe."""

    def __init__(self, path: Path, mode: Literal["record", "replay"]):
        self.path = Path(path)
        self.mode = mode
        self._lock = threading.Lock()
        self._tapes: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        if mode == "replay":
            if not self.path.is_file():
                raise UserError(f"cassette {self.path} not found (record one with llm.cassette_mode=record first)")
            for n, line in enumerate(self.path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    self._tapes[entry["key"]].append(entry)
                except (ValueError, KeyError, TypeError):
                    raise UserError(f"cassette {self.path} line {n} is not a recorded exchange") from None
        elif mode == "record":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        else:
            raise UserError(f"cassette mode must be record or replay, not {mode!r}")

    def record(self, model: str, request: dict[str, Any], status: int, response: dict[str, Any] | None) -> None:
        """Append one exchange (record mode)."""
        entry = {"key": exchange_key(model, request), "model": model, "request": request,
                 "status": status, "response": response}
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock, self.path.open("a") as f:
            f.write(line)

    def replay(self, model: str, request: dict[str, Any]) -> tuple[int, dict[str, Any] | None] | None:
        """(status, response) of the next recorded exchange for this request, or None on a miss."""
        with self._lock:
            tape = self._tapes.get(exchange_key(model, request))
            if not tape:
                return None
            entry = tape.popleft()
        return int(entry["status"]), entry["response"]
