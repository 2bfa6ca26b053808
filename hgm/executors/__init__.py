"""Executors run the search's jobs; the scheduler (hgm/search.py) decides and commits.

A job is data: a `JobKey` (kind, row id, attempt) plus a payload the executor hands to the job
function unchanged (an `Evaluate` / `Expand` decision in tests and simulations, an `EvalJob` /
`ExpandJob` in a real run, see hgm/jobs.py). `submit` never queues beyond the slots the executor
reports: the scheduler keeps at most `slots()` jobs in flight and decides the next one only after
a result is committed. `wait` returns what finished, as `Delivery`s:

- `result`: what the job function returned;
- `error`: the job function raised (a bug or an infra failure of that job: booked infra_error);
- `lost`: the worker process or node died under the job (redone by the scheduler as the next
  attempt, never booked against the agent).

Executors by name (executor.name, chosen by hgm/run.py's `make_executor`): `local` (threads in the
`hgm run` process, the default, hgm/executors/local.py) and `ray` (Ray tasks on a cluster's sandbox
slots, hgm/executors/ray.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hgm.domain import JobKind


@dataclass(frozen=True)
class JobKey:
    kind: JobKind
    row_id: int
    """The evaluation's or expansion's id in the run store."""
    attempt: int


@dataclass(frozen=True)
class Delivery:
    key: JobKey
    result: object = None
    error: tuple[str, str] | None = None
    """(error_type, traceback) when the job function raised."""
    lost: str | None = None
    """Why the job's worker was lost (process or node died)."""


class Executor(Protocol):
    name: str

    def slots(self) -> int:
        """Worker slots that can run a job now (busy ones included)."""
        ...

    def submit(self, key: JobKey, job: object) -> None:
        """Start `job`; its result comes back from `wait` under `key`."""
        ...

    def wait(self, timeout: float | None) -> list[Delivery]:
        """What finished: blocks until at least one job did or `timeout` seconds passed."""
        ...

    def cancel(self, key: JobKey) -> None:
        """Stop the job if the executor can (a late result is dropped by the scheduler anyway)."""
        ...

    def close(self) -> None:
        ...


__all__ = ["Delivery", "Executor", "JobKey"]
