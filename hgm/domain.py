"""The run's domain types: statuses, outcomes and rows, apart from any persistence.

The SQLite run store (hgm/store.py), the simulator's in-memory store (hgm/memory_store.py),
the search, show-tree and the report all read and write these.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EvalStatus(StrEnum):
    """How one task evaluation ended (a benchmark's scorer returns one of the first four)."""

    SOLVED = "solved"
    FAILED = "failed"
    EMPTY_PATCH = "empty_patch"
    """The agent left the solution files unchanged; the tests were not run."""
    INFRA_ERROR = "infra_error"
    """The harness could not run the agent or the tests (see ErrorType): never the agent's failure."""
    SCORED = "scored"
    """A target's scorer gave a score in [0, 1] (the row's `score`): a fractional success."""
    IN_FLIGHT = "in_flight"
    """Started, not finished (a store row only)."""


COUNTED = frozenset({EvalStatus.SOLVED, EvalStatus.FAILED, EvalStatus.EMPTY_PATCH, EvalStatus.SCORED})
"""Statuses that count for the agent (its n_s and n_f); infra_error and in_flight count for nothing."""


def count_text(count: float) -> str:
    """A counter for people: whole numbers as such (3), fractional ones to two places (2.35)."""
    return str(int(count)) if float(count).is_integer() else f"{count:.2f}"


def success(status: EvalStatus, score: float | None) -> float | None:
    """The share of a success an evaluation counts for, added to n_s (and 1 - it to n_f): solved 1,
    failed and empty_patch 0, scored its score; None for a status that does not count."""
    if status == EvalStatus.SCORED:
        assert score is not None and 0.0 <= score <= 1.0, f"a scored evaluation needs a score in [0, 1], not {score}"
        return score
    if status in COUNTED:
        return 1.0 if status == EvalStatus.SOLVED else 0.0
    return None


class ErrorType(StrEnum):
    """What broke, in an evaluation's or expansion's `error_type` (infra_error, or a failed rewrite).

    A row may also hold the class name of an unexpected exception that the one boundary of an
    evaluation or expansion caught (e.g. "OSError"); the values are stored as these strings."""

    INTERRUPTED = "Interrupted"
    """In flight when its process stopped (set when the store is reopened); redone on resume."""
    WORKER_LOST = "WorkerLost"
    """The job's worker (process or node) died every time it was dispatched."""
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    """The job ran past its deadline and was cancelled."""
    RUN_COST_CAP = "RunCostCap"
    """The run's dollar or token cap cut the agent's LLM session off."""
    UPSTREAM_FAILED = "UpstreamFailed"
    """The LLM provider failed for good (after the gateway's retries)."""
    TEST_INFRA = "TestInfra"
    """The scorer reported infra_error without saying what broke."""
    TOOLCHAIN_MISSING = "ToolchainMissing"
    """The task language's toolchain is not installed or unusable in the sandbox."""
    DEPS_MISSING = "DepsMissing"
    """The task's test dependencies were not prepared (`hgm benchmark prepare`)."""
    SANDBOX_UNAVAILABLE = "SandboxUnavailable"
    """The sandbox could not start or run the command."""
    SANDBOX_CLOSED = "SandboxClosed"
    """The sandbox was shut down under the command: the run is stopping."""
    IMAGE_UNAVAILABLE = "ImageUnavailable"
    """A SWE-bench instance's environment image could not be had."""
    EVAL_LOG_UNPARSABLE = "EvalLogUnparsable"
    """SWE-bench: the test run left no results its log parser could read."""
    SCORER_FAILED = "ScorerFailed"
    """A target's scorer crashed, ran past its time limit, printed no JSON result, or a score outside
    [0, 1] (the scorer is the user's, trusted: never the target's failure)."""
    EXPANSION_INFRA = "ExpansionInfra"
    """A rewrite stopped for a reason not the agent's: the LLM upstream failed, or the run's budget
    cut the session off."""
    DIAGNOSIS_FAILED = "DiagnosisFailed"
    """Failed rewrite: the diagnosis LLM gave no usable answer."""
    AGENT_CRASHED = "AgentCrashed"
    """Failed rewrite: the parent agent exited with an error while rewriting itself."""
    EMPTY_DIFF = "EmptyDiff"
    """Failed rewrite: the parent agent changed nothing."""
    VALIDATION_FAILED = "ValidationFailed"
    """Failed rewrite: the child does not compile, or fails its own tests or a smoke run."""


class VerdictFlag(StrEnum):
    """Why a verdict looks manipulated (an evaluation's `flag`)."""

    SUSPECTED_TAMPERING = "suspected_tampering"
    """Tests exited 0 but their machine-readable report was missing, partial or disagreed with the
    console: scored failed, and flagged for a person to look at."""


class MetaKey(StrEnum):
    """Keys of the run store's `meta` table."""

    FORMAT = "format"
    """Always hgm.store.STORE_FORMAT: tells a run store from any other SQLite file."""
    SCHEMA_VERSION = "schema_version"
    CONFIG = "config"
    """The resolved HGMConfig, as JSON."""
    CREATED_AT = "created_at"
    """Unix time the run was created."""
    RUN_ID = "run_id"
    """A random id of the run, made when it first runs on the ray executor (workers' caches go by it)."""
    INITIAL_AGENT = "initial_agent"
    """Absolute path of the initial agent's directory."""
    FINALISTS = "finalists"
    """JSON {node id: evaluations it must reach} of the finalists' re-evaluation, once it began."""
    FINAL_AGENT = "final_agent"
    """The node id of the agent the run named best, once it ended."""
    SIMULATE_WORLD = "simulate_world"
    """`hgm simulate`: the simulated world (true success rates), as JSON."""
    POLICY_STATE = "policy_state"
    """The policy's schedule state (Policy.state(): dgm-paper's generations and staged evaluation,
    sica's iterations), as JSON; rewritten after each decision and result."""
    REPLAY_OF = "replay_of"
    """`hgm replay`: the run directory whose decisions this run replayed."""


class ExpansionStatus(StrEnum):
    IN_FLIGHT = "in_flight"
    COMMITTED = "committed"
    FAILED = "failed"
    INFRA_ERROR = "infra_error"


class JobKind(StrEnum):
    """An evaluation or an expansion, as a job handed to an executor."""

    EVAL = "eval"
    EXPAND = "expand"


class DispatchState(StrEnum):
    OPEN = "open"
    """Handed to an executor; its result is committed only while the dispatch is open."""
    DONE = "done"
    """Its result was committed."""
    LOST = "lost"
    """Its worker (process or node) died; the job was dispatched again as the next attempt."""
    INTERRUPTED = "interrupted"
    """The scheduler's process stopped while it was open; the job is re-decided on resume."""


@dataclass
class EvalOutcome:
    """What one task evaluation produced (a job's result, committed by the scheduler)."""

    status: EvalStatus
    agent_s: float | None = None
    test_s: float | None = None
    cost_usd: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error_type: str | None = None
    """An ErrorType, or an unexpected exception's class name (infra_error only)."""
    error: str | None = None
    """Traceback or reason, for infra_error."""
    log_dir: str | None = None
    """Relative to the run dir, e.g. nodes/3/evals/python__x."""
    detail: str | None = None
    """The scorer's short reason: "12 tests passed", "exit 1: ...", "report missing", ..."""
    flag: VerdictFlag | None = None
    """Set when the verdict looks manipulated (e.g. suspected tampering with the test run)."""
    score: float | None = None
    """Status scored: the scorer's score in [0, 1] (hgm.domain.success)."""


@dataclass
class ExpansionOutcome:
    """What one self-modification produced (a job's result, committed by the scheduler)."""

    status: ExpansionStatus
    commit: str | None = None
    message: str = ""
    reason: str = ""
    entry_task: str | None = None
    cost_usd: float | None = None
    error_type: str | None = None
    error: str | None = None
    log_dir: str | None = None


@dataclass(frozen=True)
class NodeRow:
    id: int
    parent_id: int | None
    commit: str | None
    message: str
    created_at: float


@dataclass(frozen=True)
class EvaluationRow:
    id: int
    node_id: int
    task_id: str
    status: EvalStatus
    started_at: float
    finished_at: float | None
    agent_s: float | None
    test_s: float | None
    cost_usd: float | None
    prompt_tokens: int
    completion_tokens: int
    error_type: str | None
    error: str | None
    log_dir: str | None
    detail: str | None = None
    flag: VerdictFlag | None = None
    score: float | None = None
    """Status scored: the scorer's score in [0, 1]."""

    @property
    def success(self) -> float | None:
        """What it adds to n_s (hgm.domain.success); None when it does not count."""
        return success(self.status, self.score)


@dataclass(frozen=True)
class ExpansionRow:
    id: int
    parent_id: int
    child_id: int | None
    status: ExpansionStatus
    commit: str | None
    message: str
    reason: str
    entry_task: str | None
    started_at: float
    finished_at: float | None
    cost_usd: float | None
    error_type: str | None
    error: str | None
    log_dir: str | None


@dataclass(frozen=True)
class DispatchRow:
    kind: JobKind
    row_id: int
    """The evaluation's or expansion's id."""
    attempt: int
    state: DispatchState
    opened_at: float
    closed_at: float | None
    reason: str | None
    """Why a dispatch was lost or interrupted."""


@dataclass(frozen=True)
class Usage:
    """Sums over LLM calls (`Usage()` is none, `a + b` both); cost_usd is None when any call's cost
    is unknown."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = 0.0
    known_cost_usd: float = 0.0
    """Sum over the calls whose cost is known (what a run's cost cap counts)."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.calls + other.calls, self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens, self.cached_tokens + other.cached_tokens,
                     None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd,
                     self.known_cost_usd + other.known_cost_usd)


@dataclass(frozen=True)
class LLMCallUsage:
    """One LLM call's usage, for curves over a run (no request or response bodies)."""

    created_at: float
    role: str
    node_id: int | None
    task_id: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


@dataclass(frozen=True)
class LLMExchange:
    """One LLM call's place and answer, without its request (RunStore.llm.request rebuilds that)."""

    id: int
    created_at: float
    session: str
    """The gateway's session id (numbered per process: a resumed run starts again at s1)."""
    role: str
    node_id: int | None
    task_id: str | None
    status: str
    """ok, error, context_length, upstream_failed, over_budget or run_cap (hgm.llm.gateway.Recorder)."""
    attempts: int
    """Requests sent upstream (0: the gateway refused it itself)."""
    response_json: str | None
    error: str | None
