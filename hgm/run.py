"""`hgm run`: a run directory, the search wired to real expansions and evaluations, a live view.

Everything a run needs is checked before its directory is touched: model keys, the benchmark
tree, the task list, the sandbox. The store is the truth (resume = reopen); the archive holds
the code. The scheduler (hgm/search.py) runs in a background thread and hands jobs (hgm/jobs.py)
to an executor: `local` threads by default, or `ray`. Here a decision becomes a job (`_Jobs.prepare`)
and a job's result becomes an outcome the scheduler commits (`_Jobs.unpack`: logs and a child's
commit brought into the run directory and archive first). The main thread draws the live view and
owns Ctrl-C and SIGTERM: the first Ctrl-C stops new work and lets work in flight finish; a second
Ctrl-C, or a SIGTERM, abandons it (it is redone on resume): the run's sandbox and the benchmark's
(SWE-bench's instance environments) kill what they run and remove their cgroups or containers
before the run's temporary directories go. A SIGKILL loses nothing that had finished
(every result is its own transaction). RUN_DIR/run.log is a plain-text log of the run.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from hgm.agent_runtime import agent_venv
from hgm.archive import Archive, init_archive
from hgm.baselines import stage_tasks
from hgm.benchmarks import Benchmark, Task, check_subset, get_benchmark
from hgm.config import HGMConfig, set_keys
from hgm.domain import EvalOutcome, EvalStatus, ExpansionOutcome, ExpansionStatus, JobKind, MetaKey, Usage, count_text
from hgm.errors import SearchExhausted, UserError
from hgm.executors import Executor
from hgm.executors.local import LocalExecutor
from hgm.expand import expand_job
from hgm.jobs import EvalJob, JobResult
from hgm.llm.gateway import Gateway
from hgm.llm.providers import ModelRoute, check_llm, spend_bounds
from hgm.markup import literal
from hgm.paths import INITIAL_AGENT
from hgm.policies import lower_bounds
from hgm.sandbox import Sandbox, get_sandbox
from hgm.search import Decision, Evaluate, Expand, Progress, Search
from hgm.steering import REQUESTS_FILE, parse_requests
from hgm.store import DB_NAME, RunStore
from hgm.worker import Workbench, run_job, unpack_logs

ROLES = ("downstream", "self_improve", "diagnose")
RUN_TMP_PREFIX = "hgm-run-"
SHUTDOWN_TIMEOUT_S = 15.0
"""After a second Ctrl-C: how long sandboxes and workers get to end and clean up."""
log = logging.getLogger("hgm.run")


@dataclass
class Prepared:
    """What a run needs, checked before any work."""

    config: HGMConfig
    benchmark: Benchmark
    tasks: dict[str, Task]
    sandbox: Sandbox
    routes: list[ModelRoute] = field(default_factory=list)
    """The models of the three roles, resolved."""


def prepare(config: HGMConfig) -> Prepared:
    """Check keys, benchmark, tasks and sandbox; UserError with the fix for the first problem."""
    if not config.benchmark.task_ids:  # a typo first, before keys, trees or the Hub
        check_subset(config.benchmark.name, config.benchmark.subset)
    target = config.benchmark.target
    solver = [config.llm.downstream] if target is None or target.llm else []  # a target without an LLM needs none
    routes = check_llm(config.llm, [*solver, config.llm.self_improve, config.llm.diagnose])
    benchmark = get_benchmark(config.benchmark)
    if config.benchmark.task_ids:
        tasks = [benchmark.task(t) for t in config.benchmark.task_ids]  # UserError names an unknown id
    else:
        tasks = benchmark.tasks(config.benchmark.subset)
    if len({t.id for t in tasks}) != len(tasks):
        raise UserError("the task list names a task twice; give each task once")
    sandbox = get_sandbox(config.sandbox.backend, config.sandbox)
    return Prepared(config, benchmark, {t.id: t for t in tasks}, sandbox, routes)


def cause(error: str, limit: int = 200) -> str:
    """The line of an error (a message or a traceback) that says why: its last non-empty one."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:limit]


def dgm_stages(prepared: Prepared) -> list[list[str]] | None:
    """search.dgm_paper.stages as task ids (subset names looked up in the run's benchmark), for dgm-paper."""
    if prepared.config.search.policy != "dgm-paper":
        return None
    return stage_tasks(prepared.config.search.dgm_paper.stages, list(prepared.tasks),
                       lambda name: [t.id for t in prepared.benchmark.tasks(name)])


def check_output_dir(run_dir: Path) -> None:
    if (run_dir / DB_NAME).exists():
        raise UserError(f"{run_dir} already holds a run; resume it with `hgm run --resume {run_dir}` "
                        "or give another --run-dir")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir} is not empty and holds no hgm run; give a new or empty --run-dir")


def new_run(run_dir: Path, config: HGMConfig, console: Console, initial_agent: Path = INITIAL_AGENT) -> int:
    """Start a run in `run_dir` from the agent in `initial_agent`; returns the process exit code."""
    run_dir = Path(run_dir)
    check_output_dir(run_dir)
    prepared = prepare(config)
    dgm_stages(prepared)  # a stage without tasks is named before the run starts
    store = RunStore.create(run_dir, config)
    store.set_meta(MetaKey.INITIAL_AGENT, str(Path(initial_agent).resolve()))
    return _drive(run_dir, store, prepared, console, resumed=False, initial_agent=initial_agent)


def resume_run(run_dir: Path, console: Console, changes: dict[str, object] | None = None) -> int:
    """Continue the run in `run_dir` with its stored config; `changes` ({"search.workers": 4,
    "executor.name": "ray", ...}) are where its work may run differently. Returns the exit code."""
    run_dir = Path(run_dir)
    if not (run_dir / DB_NAME).is_file():
        raise UserError(f"no hgm run in {run_dir} (missing {DB_NAME}); start one with `hgm run --run-dir ...`")
    # Validate read-only first: a foreign or corrupt store is reported without being touched.
    with RunStore.open(run_dir, readonly=True) as probe:
        has_nodes = bool(probe.nodes())
        cut = (sum(e.status == EvalStatus.IN_FLIGHT for e in probe.evaluations()),
               sum(x.status == ExpansionStatus.IN_FLIGHT for x in probe.expansions()))
        config = probe.config
    if has_nodes and not (run_dir / "archive").exists():
        raise UserError(f"{run_dir} has agents in its store but no archive/ directory; it cannot be resumed")
    set_keys(config, changes or {})
    prepared = prepare(config)  # keys, benchmark, sandbox: checked before the store is written to
    store = RunStore.open(run_dir)  # marks work left in flight as interrupted
    return _drive(run_dir, store, prepared, console, resumed=True, cut=cut)


def _root(run_dir: Path, store: RunStore, initial_agent: Path) -> tuple[Archive, int]:
    """The archive and the root node, created on first start (and finished if a kill cut that short)."""
    path = run_dir / "archive"
    nodes = store.nodes()
    if path.exists() and not nodes and not (path / "refs" / "hgm" / "root").exists():
        shutil.rmtree(path)  # a kill cut the archive's creation short; nothing in it is referenced yet
    if path.exists():
        archive = Archive.open(path)
        sha = archive.resolve("refs/hgm/root")
    else:
        archive, sha = init_archive(path, initial_agent)
    root = nodes[0].id if nodes else store.add_node(None, sha, "initial agent")
    for n in store.nodes():  # node refs are set after the store; repair any a kill skipped
        if n.commit:
            archive.set_node(n.id, n.commit)
    return archive, root


@dataclass
class _View:
    """The live display: a snapshot of the search plus the gateway's running usage totals."""

    gateway: Gateway
    run_dir: Path
    budget_usd: float | None
    budget_tokens: int | None = None
    started: float = field(default_factory=time.monotonic)
    progress: Progress | None = None
    events: list[str] = field(default_factory=list)
    stopping: str = ""
    search: Search | None = None
    _progress_at: float = 0.0

    def usage_table(self) -> Table:
        t = Table("role", "calls", "prompt tok", "completion tok", "$ (+? = some prices unknown)", box=None,
                  pad_edge=False)
        usage = self.gateway.usage_by_role()  # running totals: no scan of the store
        for role in ROLES:
            u = usage.get(role, Usage())
            t.add_row(role, str(u.calls), f"{u.prompt_tokens:,}", f"{u.completion_tokens:,}",
                      f"{u.known_cost_usd:.4f}" + ("+?" if u.cost_usd is None else ""))
        total = sum((usage.get(role, Usage()) for role in ROLES), Usage())
        cap = f" of the ${self.budget_usd} cap" if self.budget_usd is not None else ""
        t.add_row("total", str(total.calls), f"{total.prompt_tokens:,}", f"{total.completion_tokens:,}",
                  f"{self.gateway.run_cost_usd:.4f}{cap}")
        if self.budget_tokens is not None:
            t.add_row("token cap", "", f"{self.gateway.run_tokens:,} of {self.budget_tokens:,} tokens", "", "")
        return t

    def __rich__(self) -> Panel:
        if self.search is not None and time.monotonic() - self._progress_at > 1:
            self.progress = self.search.snapshot()  # consistent: taken under the scheduler's lock
            self._progress_at = time.monotonic()
        p = self.progress
        elapsed = time.strftime("%H:%M:%S", time.gmtime(time.monotonic() - self.started))
        head = Table.grid(padding=(0, 2))
        if p is not None:
            head.add_row("agents", f"{p.agents} (+{p.expansions_in_flight} being written, {p.failed_expansions} "
                                   f"failed rewrites)")
            head.add_row(
                "evaluations",
                f"{p.evals_done} / {p.evals_budget} done, {p.evals_in_flight} in flight, "
                f"{p.infra_errors} infra errors"
                + ("  [bold](re-evaluating the finalists)[/]" if p.phase == "finalists" else ""),
            )
            head.add_row(
                "best agent",
                f"node {p.best_agent}: {count_text(p.best_successes)} solved / "
                f"{count_text(p.best_successes + p.best_failures)}, lower bound {p.best_lower_bound:.3f}",
            )
        if p is not None and p.held:
            head.add_row("[bold yellow]holding[/]", literal(p.held))
        head.add_row("elapsed", elapsed + (f"   [yellow]{literal(self.stopping)}[/]" if self.stopping else ""))
        body = Group(head, "", self.usage_table(), "", *map(literal, self.events[-6:]))
        return Panel(body, title=f"hgm run {literal(self.run_dir)}", border_style="cyan")


def _drive(run_dir: Path, store: RunStore, prepared: Prepared, console: Console, *, resumed: bool,
           cut: tuple[int, int] = (0, 0), initial_agent: Path | None = None) -> int:
    config = prepared.config
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    tmp = _run_tmp()
    system_tmp, tempfile.tempdir = tempfile.tempdir, str(tmp)  # every temporary file of the run goes under tmp
    try:
        log.info("%s run in %s: %d tasks, policy %s, budget %d task evaluations, %d workers",
                 "resuming" if resumed else "starting", run_dir, len(prepared.tasks), config.search.policy,
                 config.search.max_task_evals, config.search.workers)
        console.print(literal(f"{'resuming' if resumed else 'starting'} run in {run_dir}: {len(prepared.tasks)} tasks, "
                              f"budget {config.search.max_task_evals} task evaluations, {config.search.workers} "
                              f"workers; log: {run_dir / 'run.log'}"), soft_wrap=True, highlight=False)
        notes, warnings = spend_bounds(prepared.routes, config.budget)
        for note in notes:
            log.info(note)
            console.print(literal(note), soft_wrap=True, highlight=False)
        for warning in warnings:
            log.warning(warning)
            console.print(f"[yellow]warning:[/] {literal(warning)}", soft_wrap=True, highlight=False)
        if any(cut):
            log.info("%d evaluations and %d rewrites were in flight when the run stopped: marked interrupted, "
                     "redone", *cut)
        agent = initial_agent or Path(store.get_meta(MetaKey.INITIAL_AGENT) or INITIAL_AGENT)
        archive, root = _root(run_dir, store, agent)
        (tmp / "agents").mkdir()
        with console.status("preparing the initial agent's environment"):
            agent_venv(archive.checkout(archive.resolve(f"node-{root}"), tmp / "agents"), console=console)
        spent = store.llm.run_cap_refusal()
        if spent is not None:
            raise UserError(f"{run_dir} has spent its LLM budget ({spent}); there is nothing left to resume. "
                            "`hgm show-tree` shows its agents.")
        with Gateway(tmp / "gw.sock", llm=config.llm, budget=config.budget, recorder=store.llm.record,
                     used_before=store.llm.usage_by_role()) as gateway:
            return _search(run_dir, store, prepared, archive, gateway, tmp, console)
    finally:
        log.removeHandler(handler)
        handler.close()
        tempfile.tempdir = system_tmp
        shutil.rmtree(tmp, ignore_errors=True)
        store.close()


def _run_tmp() -> Path:
    """The run's own temporary directory (short: Unix socket names are limited), named after this
    process; those of runs whose process is gone (SIGKILL leaves them) are removed first."""
    for stale in Path(tempfile.gettempdir()).glob(f"{RUN_TMP_PREFIX}*-*"):
        pid = stale.name[len(RUN_TMP_PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{RUN_TMP_PREFIX}{os.getpid()}-"))


@dataclass
class _Jobs:
    """The scheduler's half of every job: decision -> job, and result -> outcome to commit; and the
    agents' node-<id> branches in the archive."""

    run_dir: Path
    store: RunStore
    archive: Archive
    config: HGMConfig
    task_ids: list[str]
    event: Callable[[str], None]
    named: dict[int, str] = field(default_factory=dict)
    """Node id -> commit of the agents whose branch is set."""

    def prepare(self, decision: Decision) -> object:
        if isinstance(decision, Evaluate):
            log_dir = f"nodes/{decision.node_id}/evals/{decision.task_id}"
            if (self.run_dir / log_dir).exists() or decision.attempt > 1:  # the pair again, or a redone job
                log_dir += f"-{decision.eval_id}" + (f"-a{decision.attempt}" if decision.attempt > 1 else "")
            return EvalJob(decision.eval_id, decision.attempt, decision.node_id, self._commit(decision.node_id),
                           decision.task_id, log_dir)
        log_dir = f"nodes/{decision.parent_id}/expansions/{decision.expansion_id}"
        return expand_job(self.store, self.run_dir, parent_id=decision.parent_id,
                          commit=self._commit(decision.parent_id), expansion_id=decision.expansion_id,
                          attempt=decision.attempt, task_ids=self.task_ids, seed=self.config.search.seed,
                          log_dir=log_dir + (f"-a{decision.attempt}" if decision.attempt > 1 else ""),
                          rewriter_commit=None if decision.rewriter_id is None else self._commit(decision.rewriter_id))

    def unpack(self, decision: Decision, result: object) -> EvalOutcome | ExpansionOutcome:
        """Bring a result's logs and commit home, before the scheduler commits its outcome."""
        assert isinstance(result, JobResult), f"a job returned {result!r}"
        o = result.outcome
        if result.logs is not None:
            unpack_logs(result.logs, self.run_dir)
        if result.bundle is not None:
            self.archive.import_bundle(result.bundle)
        if isinstance(decision, Evaluate):
            self.event(f"node {decision.node_id} on {decision.task_id}: {o.status.value}"
                       + (f" ({o.error_type}: {cause(o.error)})" if o.error_type and o.error else
                          f" ({o.error_type})" if o.error_type else ""))
            return o
        assert isinstance(o, ExpansionOutcome)
        if result.attempt_commit:
            self.archive.set_ref(f"refs/hgm/attempts/{decision.expansion_id}", result.attempt_commit)
        if o.status == ExpansionStatus.COMMITTED:
            assert o.commit
            self.archive.set_ref(f"refs/hgm/expansions/{decision.expansion_id}", o.commit)
        by = f" by node {decision.rewriter_id}" if decision.rewriter_id is not None else ""
        self.event(f"rewrite {decision.expansion_id} of node {decision.parent_id}{by}: {o.reason[:160]}")
        self._collect_requests(decision, o)
        return o

    def _collect_requests(self, decision: Expand, outcome: ExpansionOutcome) -> None:
        """Record what the rewriting agent asked for in its requests file (hgm/steering.py); a
        person answers with `hgm steer RUN grant|decline`."""
        path = self.run_dir / (outcome.log_dir or "") / "agent" / REQUESTS_FILE
        if not outcome.log_dir or not path.is_file() or path.is_symlink():
            return
        found, problems = parse_requests(path.read_text(errors="replace")[:100_000])
        for problem in problems:
            log.info("rewrite %d: requests file %s: %s", decision.expansion_id, path, problem)
        for kind, what, why in found:
            rid = self.store.add_agent_request(decision.expansion_id, decision.parent_id, kind, what, why)
            self.event(f"node {decision.parent_id} asks for {kind.value} {what!r} (request {rid}): "
                       f"hgm steer {self.run_dir} requests")

    def name_new_agents(self) -> None:
        """Point the branch of each agent that landed since (the store gave it its id) at its commit."""
        for n in self.store.nodes():
            if n.id not in self.named and n.commit:
                self.archive.set_node(n.id, n.commit)
                self.named[n.id] = n.commit

    def _commit(self, node_id: int) -> str:
        if node_id not in self.named:
            self.name_new_agents()
        return self.named[node_id]


def deadlines(config: HGMConfig) -> dict[JobKind, float]:
    """Head-side time budget of each kind of job: its sandbox timeouts, its LLM calls' worst case
    (diagnosis: two requests with all retries), plus executor.deadline_slack_s."""
    sb, slack = config.sandbox, config.executor.deadline_slack_s
    diagnose = 2 * config.llm.request_worst_case_s
    return {JobKind.EVAL: sb.agent_timeout_s + 2 * sb.test_timeout_s + slack,
            JobKind.EXPAND: diagnose + sb.agent_timeout_s + 3 * sb.validate_timeout_s + slack}


def make_executor(prepared: Prepared, bench: Workbench, gateway: Gateway, store: RunStore,
                  stack: ExitStack) -> Executor:
    """The configured executor: local threads over `bench`, or Ray (with the gateway's relay for
    worker nodes); `stack` closes what it started."""
    config, ex = prepared.config, prepared.config.executor
    if ex.name == "local":
        return LocalExecutor(lambda job: run_job(bench, job), config.search.workers)  # type: ignore[arg-type]
    from hgm.executors.ray import RayExecutor, WorkerSpec
    from hgm.llm.relay import RelayListener

    executor = RayExecutor(address=ex.ray_address, head_address=ex.head_address, local_slots=config.search.workers)
    stack.callback(executor.close)
    listener = stack.enter_context(RelayListener(gateway, executor.node_ip, ex.relay_port))
    run_id = store.get_meta(MetaKey.RUN_ID)
    if run_id is None:
        run_id = uuid.uuid4().hex[:16]
        store.set_meta(MetaKey.RUN_ID, run_id)
    spec = WorkerSpec(run_id, config.model_dump_json(), tuple(prepared.tasks), listener.url, listener.secret)
    executor.start(spec, bench.archive.bundle)
    log.info("ray executor: %d worker slots in %s; gateway relay on %s", executor.slots(), executor.address,
             listener.url)
    return executor


def _search(run_dir: Path, store: RunStore, prepared: Prepared, archive: Archive, gateway: Gateway, tmp: Path,
            console: Console) -> int:
    config = prepared.config
    view = _View(gateway, run_dir, config.budget.max_usd_run, config.budget.max_tokens_run)
    bench = Workbench(config, prepared.benchmark, prepared.tasks, prepared.sandbox, gateway, archive, tmp / "agents",
                      run_dir)
    live_on = threading.Event()

    def event(text: str) -> None:
        log.info(text)
        view.events.append(f"{time.strftime('%H:%M:%S')} {text}")
        if not live_on.is_set():
            console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {literal(text)}", highlight=False, soft_wrap=True)

    named = {n.id: n.commit for n in store.nodes() if n.commit}  # _root set their branches
    jobs = _Jobs(run_dir, store, archive, config, list(prepared.tasks), event, named)
    with ExitStack() as stack:
        executor = make_executor(prepared, bench, gateway, store, stack)
        return _schedule(run_dir, store, prepared, gateway, console, view, jobs, executor, live_on)


def _schedule(run_dir: Path, store: RunStore, prepared: Prepared, gateway: Gateway, console: Console, view: _View,
              jobs: _Jobs, executor: Executor, live_on: threading.Event) -> int:
    config = prepared.config

    stop_reason: list[str] = []

    def on_progress(p: Progress) -> None:  # called by the scheduler after each commit
        if p.agents > len(jobs.named):  # a child just landed
            jobs.name_new_agents()
        spent = gateway.run_cap_reason
        if spent is not None and not stop_reason:
            stop_reason.append(spent)
            view.stopping = f"{spent}: finishing work in flight"
            log.info("%s: no new work", spent)
            search.stop()

    search = Search(store, config.search, list(prepared.tasks), executor, prepare=jobs.prepare, unpack=jobs.unpack,
                    on_progress=on_progress, deadlines=deadlines(config), max_attempts=config.executor.max_attempts,
                    stages=dgm_stages(prepared), steer=config.steer)
    view.progress, view.search = search.snapshot(), search
    result: list[object] = []

    def work() -> None:
        try:
            result.append(search.run())
        except BaseException as e:  # re-raised in the main thread
            result.append(e)

    interrupts = 0

    def on_signal(signum: int, frame: object) -> None:
        nonlocal interrupts
        interrupts += 2 if signum == signal.SIGTERM else 1  # SIGTERM (a stop request) does not wait
        if interrupts == 1:
            view.stopping = "stopping: no new work; waiting for work in flight (Ctrl-C again to abandon it)"
            log.info("interrupted (signal %d): no new work, finishing work in flight", signum)
            search.stop()
        else:
            log.info("%s: abandoning work in flight (redone on resume)",
                     "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted again")
            search.stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=work, name="hgm-search", daemon=True)
    thread.start()
    try:
        if console.is_terminal:
            live_on.set()
            with Live(view, console=console, refresh_per_second=2, transient=False):
                while thread.is_alive() and interrupts < 2:
                    thread.join(0.25)
        else:
            while thread.is_alive() and interrupts < 2:
                thread.join(0.25)
        if interrupts >= 2:
            _abandon(prepared.sandbox, prepared.benchmark, thread)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return _finish(run_dir, store, search, [] if interrupts >= 2 else result, stop_reason, console)


def _abandon(sandbox: Sandbox, benchmark: Benchmark, search_thread: threading.Thread) -> None:
    """Second Ctrl-C or SIGTERM: end every sandboxed command (process trees, cgroups, containers; the
    run's sandbox and the benchmark's per-task ones) before the run's temporary directories are
    removed, and give the workers a moment to unwind."""
    end = time.monotonic() + SHUTDOWN_TIMEOUT_S
    killed = sandbox.shutdown(timeout=SHUTDOWN_TIMEOUT_S) + benchmark.shutdown(timeout=SHUTDOWN_TIMEOUT_S)
    search_thread.join(max(0.0, end - time.monotonic()))
    log.info("abandoned work in flight: %d sandboxed commands killed%s", killed,
             "" if not search_thread.is_alive() else "; some workers were still busy (outside a sandbox)")


def _finish(run_dir: Path, store: RunStore, search: Search, result: list[object], stop_reason: list[str],
            console: Console) -> int:
    resume = f"hgm run --resume {run_dir}"
    if result and isinstance(result[0], BaseException):
        log.error("the search stopped on an error: %s", result[0])
        if isinstance(result[0], SearchExhausted):
            raise UserError(f"the run ended early: {result[0]}\n`hgm show-tree {run_dir}` shows the tree") from result[
                0
            ]
        if isinstance(result[0], UserError):  # e.g. too many infra errors in a row: fixable, then resume
            raise UserError(f"{result[0]}\nEvery finished result is saved; resume with: {resume}") from result[0]
        raise result[0]
    if not result:  # abandoned: in-flight rows stay in the store and are redone on resume
        console.print(
            f"[yellow]Abandoned work in flight.[/] Every finished result is saved. Resume with:\n  {literal(resume)}",
            soft_wrap=True,
        )
        log.info("abandoned; resume with: %s", resume)
        return 130
    res = result[0]
    final = res.final_agent  # type: ignore[attr-defined]
    if not res.completed and not stop_reason:  # type: ignore[attr-defined]
        console.print(
            f"[yellow]Stopped.[/] Every finished result is saved. Resume with:\n  {literal(resume)}", soft_wrap=True
        )
        log.info("stopped by the user; resume with: %s", resume)
        return 130
    store.set_meta(MetaKey.FINAL_AGENT, str(final))
    sha = next(n.commit for n in store.nodes() if n.id == final)
    agent = search.tree.agents[final]
    bound = float(lower_bounds([agent], search.config.final_quantile)[0])
    text = (
        f"final agent: node {final} (commit {sha[:12] if sha else '?'}), solved {count_text(agent.own_successes)} of "
        f"{agent.evals} evaluated tasks, posterior {search.config.final_quantile:g}-quantile {bound:.3f} "
        f"(named by the final rule {search.policy.final_rule})"
        + (f"; stopped early: {stop_reason[0]}" if stop_reason else "")
    )
    log.info(text)
    console.print(f"[bold green]{literal(text)}[/]", soft_wrap=True)
    console.print(literal(f"export it with:  hgm export {run_dir} {final} ./final-agent\n"
                          f"see the tree:    hgm show-tree {run_dir}"), soft_wrap=True)
    return 0
