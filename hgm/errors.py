"""Every error hgm raises on purpose, in one hierarchy.

    HGMError
    ├── UserError               the user can fix it; the CLI prints the message (the fix), no traceback
    │   ├── SandboxUnavailable  a sandbox cannot work here (also an InfraError)
    │   │   └── EnvironmentUnavailable   a SWE-bench instance's image cannot be had
    │   ├── VenvBuildError      an agent's requirements do not install
    │   ├── InfraErrorLimit     the run stops: too many infra errors in a row
    │   ├── RewriteLimit        the run stops: too many failed rewrites in a row
    │   └── SearchExhausted     the run stops: nothing is left to evaluate or rewrite
    ├── InfraError              not the agent's fault: recorded as infra_error with its `error_type`
    │   ├── SandboxClosed       the sandbox was shut down under the command (the run is stopping)
    │   └── ExpansionInfra      a rewrite lost its LLM (upstream failed, or the run's budget is spent)
    └── ExpansionFailed         a rewrite produced no valid child (the agent's doing): a failed expansion

The one boundary of an evaluation or an expansion records what it caught with `error_type_of`:
the error's ErrorType, or the class name of an exception hgm did not raise on purpose.
"""

from __future__ import annotations

from hgm.domain import ErrorType


class HGMError(Exception):
    """Base of the errors hgm raises on purpose."""

    error_type: ErrorType | None = None
    """What an evaluation or expansion that this error ends records (None: the class name)."""


class UserError(HGMError):
    """Bad input or a missing prerequisite; the message must say what to do."""


class InfraError(HGMError):
    """The harness could not do the work (never counted as an agent's failure)."""


class SandboxUnavailable(UserError, InfraError):
    """The sandbox cannot start (engine missing, permission, image absent); the message has the fix."""

    error_type = ErrorType.SANDBOX_UNAVAILABLE


class EnvironmentUnavailable(SandboxUnavailable):
    """The instance image is missing and could not be pulled or built; the message says how to get it."""

    error_type = ErrorType.IMAGE_UNAVAILABLE


class SandboxClosed(InfraError):
    """The sandbox was shut down (the harness is stopping): the command did not run, or was killed.
    Not the command's failure: the work it was part of is interrupted and redone on resume."""

    error_type = ErrorType.SANDBOX_CLOSED


class VenvBuildError(UserError):
    """pip could not install an agent's requirements (network, or requirements that do not resolve)."""


class InfraErrorLimit(UserError):
    """Too many infra errors in a row: the harness, not the agents, is broken."""


class RewriteLimit(UserError):
    """Too many failed rewrites in a row: each costs LLM calls, and something makes them all fail."""


class SearchExhausted(UserError):
    """No agent can be evaluated on a task it has not seen and no agent may be rewritten again."""


class ExpansionInfra(InfraError):
    """Not the agent's fault: the LLM upstream failed for good, or the run's budget (not a session
    cap) cut the session off."""

    error_type = ErrorType.EXPANSION_INFRA


class ExpansionFailed(HGMError):
    """The rewrite did not produce a valid child (the agent's or the diagnosis's fault)."""

    def __init__(self, error_type: ErrorType, reason: str):
        super().__init__(reason)
        self.error_type, self.reason = error_type, reason


def error_type_of(e: BaseException) -> str:
    """The error_type to record for `e`: its ErrorType, or its class name."""
    return (e.error_type if isinstance(e, HGMError) else None) or type(e).__name__
