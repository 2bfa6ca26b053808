"""One task evaluation, end to end: the boundary where its failures become data.

fresh task workspace -> gateway session (role downstream) -> the agent in the sandbox the
benchmark names for the task (SWE-bench: the instance image, the workspace at /testbed) -> the
benchmark's scorer (its own tests, in a fresh sandbox) -> `EvalOutcome`.

Booking rules. The agent's own misbehaviour (crash, endless loop, output flood, running over
its time or token budget) is contained by the sandbox and the gateway, and the task is scored
on whatever it left in the workspace. What is not the agent's fault is an `infra_error`, never
a failure: the upstream LLM down for good (the gateway marks the session upstream_failed), the
run's LLM budget cutting the agent off (run_capped, `RunCostCap`; a session's own cap is the
agent's), the sandbox unable to start, a missing toolchain or instance image, or any exception in
the harness itself.
"""

from __future__ import annotations

import shutil
import tempfile
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict

from rich.console import Console

from hgm.agent_runtime import AgentLLM, AgentRun, run_agent
from hgm.benchmarks import Benchmark, RunsNodes, Task, get_benchmark
from hgm.config import HGMConfig
from hgm.domain import ErrorType, EvalOutcome, EvalStatus
from hgm.errors import UserError, error_type_of
from hgm.jobs import GatewayAccess
from hgm.llm.gateway import Gateway, SessionUsage
from hgm.llm.providers import check_llm
from hgm.paths import resolve_agent_dir
from hgm.sandbox import Mount, Sandbox, get_sandbox, limits_from

ROLE = "downstream"


@dataclass(frozen=True)
class EvalReport:
    """An outcome plus what a person wants to look at afterwards (absolute paths)."""

    outcome: EvalOutcome
    log_dir: Path
    chat: Path
    patch: Path
    test_output: Path | None
    """The test command's output (None when the tests did not run)."""
    usage: SessionUsage | None
    agent: AgentRun | None


class _Spent(TypedDict):
    """What an evaluation used, for its outcome whatever the outcome is."""

    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    agent_s: float | None
    log_dir: str


def _infra(error_type: str, error: str, **fields: object) -> EvalOutcome:
    return EvalOutcome(status=EvalStatus.INFRA_ERROR, error_type=error_type, error=error, **fields)  # type: ignore[arg-type]


def evaluate(agent_dir: Path, task: Task, *, benchmark: Benchmark, gateway: GatewayAccess, sandbox: Sandbox,
             config: HGMConfig, log_dir: Path, run_dir: Path | None = None, node_id: int | None = None,
             console: Console | None = None) -> EvalReport:
    """Evaluate the agent in `agent_dir` on `task`; never raises for a failure of this evaluation.

    Logs go to `log_dir`: agent/chat.md, agent/statement.md, agent_stdout.txt, agent_stderr.txt,
    patch.diff and the scorer's test output. `EvalOutcome.log_dir` is relative to `run_dir`
    when given."""
    log_dir = Path(log_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    rel_log = str(log_dir.relative_to(run_dir.resolve())) if run_dir else str(log_dir)
    model = config.llm.downstream
    token: str | None = None
    usage: SessionUsage | None = None
    run: AgentRun | None = None
    test_output: Path | None = None
    outcome: EvalOutcome
    work = Path(tempfile.mkdtemp(prefix=f"hgm-eval-{task.id}-"))
    try:
        if isinstance(benchmark, RunsNodes):  # a target: the node itself runs on the case, then its scorer
            llm_env: dict[str, str] = {}
            llm_mounts: list[Mount] = []
            if benchmark.uses_llm:
                token = gateway.open_session(ROLE, model, node_id=node_id, task_id=task.id)
                llm_env = {**Gateway.agent_env(token, gateway.socket_path), "HGM_LLM_MODEL": model}
                llm_mounts = [Mount(gateway.socket_path, str(gateway.socket_path), read_only=False)]
            score = benchmark.evaluate_node(Path(agent_dir), task, sandbox=sandbox, limits=limits_from(config.sandbox),
                                            log_dir=log_dir, llm_env=llm_env, llm_mounts=llm_mounts)
            run_s = score.run_s
        else:
            ws = benchmark.make_workspace(task, work / getattr(task, "name", "workspace"))  # C++ wants the name
            workspace = ws.path
            where = benchmark.agent_environment(task, sandbox)
            token = gateway.open_session(ROLE, model, node_id=node_id, task_id=task.id)
            run = run_agent(
                Path(agent_dir), workspace, ws.base_commit, task.problem_statement, language=task.language,
                llm=AgentLLM(gateway.socket_path, token, model, gateway.context_window(model)), sandbox=where.sandbox,
                limits=limits_from(config.sandbox), timeout_s=config.sandbox.agent_timeout_s, log_dir=log_dir,
                workdir=where.workdir, path=where.path, console=console,
            )
            run_s = run.duration_s
            score = None
        if token is not None:
            usage = gateway.close_session(token)
            token = None
        tokens = _Spent(prompt_tokens=usage.prompt_tokens if usage else 0,
                        completion_tokens=usage.completion_tokens if usage else 0,
                        cost_usd=usage.cost_usd if usage else 0.0, agent_s=run_s, log_dir=rel_log)
        if usage is not None and usage.upstream_failed:
            outcome = _infra(ErrorType.UPSTREAM_FAILED, usage.failure or "the LLM upstream failed", **tokens)
        else:
            if score is None:
                score = benchmark.score(task, workspace, sandbox=sandbox, log_dir=log_dir,
                                        timeout_s=config.sandbox.test_timeout_s)
                (log_dir / "patch.diff").write_text(score.patch)
            test_output = score.output_path
            if score.infra_error:  # toolchain / dependencies / sandbox / a target's scorer: not the agent's doing
                outcome = _infra(score.error_type or ErrorType.TEST_INFRA, score.detail, test_s=score.test_s, **tokens)
            else:
                outcome = EvalOutcome(status=score.status, test_s=score.test_s, detail=score.detail, flag=score.flag,
                                      score=score.score, **tokens)
    except Exception as e:  # the one boundary of an evaluation: record, do not propagate
        if token is not None:
            usage = gateway.close_session(token)
        outcome = _infra(error_type_of(e), "".join(traceback.format_exception(e)), log_dir=rel_log,
                         agent_s=run.duration_s if run else None,
                         prompt_tokens=usage.prompt_tokens if usage else 0,
                         completion_tokens=usage.completion_tokens if usage else 0,
                         cost_usd=usage.cost_usd if usage else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if usage is not None and usage.run_capped:  # scored all the same: its logs show what the agent left
        outcome = replace(outcome, status=EvalStatus.INFRA_ERROR, error_type=ErrorType.RUN_COST_CAP,
                          error=f"the run's budget cut the agent off ({usage.failure})")
    (log_dir / "outcome.txt").write_text(f"{outcome}\n")
    return EvalReport(outcome, log_dir, log_dir / "agent" / "chat.md", log_dir / "patch.diff", test_output,
                      usage, run)


def resolve_agent(ref: str, run_dir: Path | None, dest: Path) -> Path:
    """An agent directory: `initial` or a directory (hgm.paths.resolve_agent_dir); with a run, a
    commit / node-N of its archive exported into `dest`."""
    if ref == "initial" or Path(ref).expanduser().is_dir():
        return resolve_agent_dir(ref)
    if run_dir is None:
        raise UserError(f"no agent directory {ref!r}; give `initial`, a path, or --run-dir DIR to take a commit "
                        "from a run's archive")
    from hgm.archive import Archive

    archive = Archive.open(run_dir / "archive")
    return archive.export(archive.resolve_agent(ref), dest)


def eval_agent(agent_ref: str, task_id: str, *, config: HGMConfig, run_dir: Path | None, log_dir: Path,
               console: Console) -> EvalReport:
    """`hgm eval-agent`: one agent on one task (Polyglot or SWE-bench), with a gateway of its own; nothing is
    written to a run store (the run directory, if given, is only read)."""
    check_llm(config.llm, [config.llm.downstream])  # names a missing key variable (none needed to replay)
    benchmark = get_benchmark(config.benchmark)
    task = benchmark.task(task_id)
    with tempfile.TemporaryDirectory(prefix="hgm-eval-agent-") as tmp:
        agent_dir = resolve_agent(agent_ref, run_dir, Path(tmp) / "agent")
        sandbox = get_sandbox(config.sandbox.backend, config.sandbox)
        with Gateway(Path(tmp) / "gateway.sock", llm=config.llm, budget=config.budget) as gateway:
            return evaluate(agent_dir, task, benchmark=benchmark, gateway=gateway, sandbox=sandbox,
                            config=config, log_dir=log_dir, console=console)
