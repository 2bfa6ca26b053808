"""Jobs as data: an evaluation or an expansion with serializable inputs and outputs.

The scheduler's side (hgm/run.py) turns a decision into an `EvalJob` / `ExpandJob` holding what
the worker needs from the head: the agent's commit, the task, for an expansion the entry task,
the logs of the failed run the diagnosis reads and the lineage text, and the log directory
(relative to the run directory). A worker (hgm/worker.py) runs it and returns a `JobResult`: the
outcome, plus - when the worker shares neither the run directory nor the archive (Ray) - the
logs as a tar.gz and the rewrite's commit as a git bundle. Nothing here touches the run store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hgm.domain import EvalOutcome, ExpansionOutcome
from hgm.llm.gateway import SessionUsage


@dataclass(frozen=True)
class EvalJob:
    eval_id: int
    attempt: int
    node_id: int
    commit: str
    task_id: str
    log_dir: str
    """Relative to the run directory."""


@dataclass(frozen=True)
class ExpandJob:
    expansion_id: int
    attempt: int
    parent_id: int
    commit: str
    """The parent agent's commit."""
    seed: int
    entry_task: str
    entry_status: str | None
    """How the parent (or its ancestor) did on the entry task: failed / empty_patch, or None (not run)."""
    chat_log: str
    """That evaluation's agent chat (shortened), or a note that there is none."""
    test_output: str
    lineage: str
    """What each version from the root to the parent changed and how it scored."""
    log_dir: str
    rewriter_commit: str | None = None
    """The commit of the agent that does the rewriting, when it is not the parent (SICA: the best agent
    rewrites the base agent's code); None: the parent rewrites itself."""
    memory: str = ""
    """DARWIN's memory of the lineage as JSON (hgm.expand.memory): what each change was, why, and the
    score change it brought; a target's rewriter finds it in its workspace."""
    hints: tuple[str, ...] = ()
    """A person's hints for this agent's next diagnosis (hgm steer RUN hint)."""
    granted_packages: tuple[str, ...] = ()
    """Python packages a person granted (agents' requests): the child's requirements may name them."""
    granted_files: tuple[str, ...] = ()
    """Host files a person granted: mounted read-only into the rewrite's sandbox at the same path."""
    answers: str = ""
    """The answers to this lineage's earlier requests, for the rewriting agent to read."""


Job = EvalJob | ExpandJob


@dataclass(frozen=True)
class JobResult:
    outcome: EvalOutcome | ExpansionOutcome
    attempt_commit: str | None = None
    """The rewrite's commit (the child, or a rejected attempt kept for inspection)."""
    bundle: bytes | None = None
    """That commit as a git bundle on top of the parent, when the worker has its own archive."""
    logs: bytes | None = None
    """The job's log directory as a tar.gz, when the worker does not share the run directory."""


class GatewayAccess(Protocol):
    """What a job needs of the LLM gateway: the central `Gateway` itself (local executor), or a
    client of it through a worker node's relay (hgm/llm/relay.py)."""

    @property
    def socket_path(self) -> Path:
        """The Unix socket sandboxes reach the gateway on (mounted into them)."""
        ...

    def context_window(self, model: str) -> int | None:
        """The model's context window in tokens, if the provider table knows it."""
        ...

    def open_session(self, role: str, model: str, node_id: int | None = None, task_id: str | None = None) -> str: ...

    def session_usage(self, token: str) -> SessionUsage: ...

    def close_session(self, token: str) -> SessionUsage: ...


__all__ = ["EvalJob", "ExpandJob", "GatewayAccess", "Job", "JobResult"]
