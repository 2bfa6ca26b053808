"""`hgm replay RUN`: re-run a recorded run's decisions with every LLM answer served from its store.

No key and no network: the replay's gateway gets its upstream replies from the recorded run's
`llm_calls` (`StoredAnswers`); sandboxes, toolchains, the archive and the scorers are real. The
replay writes a new run directory (the recorded one is only read), which is an ordinary run:
`hgm show-tree`, `hgm report` and `hgm verify` read it.

Recorded order. Every job (an evaluation or expansion row) is replayed at the point the record
started it and committed at the point the record committed it: the jobs are started in the order
of their rows' creation (each decision is recorded before its dispatch), and their results are
committed in the order of the closing times of their committed dispatches (`dispatches.closed_at`).
A job's inputs are read from the replay's own store when it starts (expand: the entry task, the
failed run's logs, the lineage), so with several workers in the record a job sees exactly the
results its recorded twin saw; the replay runs one job at a time (the overlap in wall-clock time
is not reproduced, and need not be). Rows that the record booked as infra errors are copied, not
re-run (an infrastructure failure is not an outcome of the agents); rows that were in flight when
a recorded process stopped stay in flight until the end, where reopening the store marks them
interrupted, as a resume did.

Which recorded answers a job gets. The LLM calls of a recorded job are those of its role(s)
(evaluation: downstream; expansion: diagnose, self_improve) on its node and task, made while its
committed dispatch was open; grouped by gateway session, in call order; a job has at most one
session of each role, and a session that fits two jobs running at once (two rewrites of one
parent on one entry task) goes to the one its request names (the rewrite's working directory
carries its expansion id), else to the one dispatched first. A replay session takes
the next recorded session of its role of the job being replayed, and its k-th request gets the
k-th forwarded answer of that session. Each request is compared with the recorded one (after
mapping the harness's temporary directory names, `hgm-eval-<task>-XXXXXXXX` and the like, from the
record's to the replay's, in both directions): a request that differs is reported with the call
id and the first place it differs (`request.messages[3].content at character 120: ...`), and is
still answered with the recorded reply, so the replay goes on and shows whether the outcomes
diverge too. The record's run directory is mapped to the replay's likewise (prompts name files in
it). A request past the end of its recorded session, or a session the record did not have, gets an
upstream failure (so the job ends as the gateway ends any job whose LLM is gone).

A person's interventions (`hgm steer`) are copied into the replay's store at their place in the
record's timeline (hints and granted requests are inputs of the rewrites after them; the
decisions they steered are replayed as recorded anyway).

Outcomes compared with the record: an evaluation's status (and flag) and its patch.diff; an
expansion's status, entry task, the child's tree and its diff against the parent (commit ids
differ: git commits carry their time); the root agent's tree; the final agent.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hgm.archive import Archive, init_archive
from hgm.benchmarks import Benchmark, get_benchmark
from hgm.config import HGMConfig
from hgm.domain import (
    DispatchState,
    EvalOutcome,
    EvalStatus,
    EvaluationRow,
    ExpansionOutcome,
    ExpansionRow,
    ExpansionStatus,
    JobKind,
    LLMExchange,
    MetaKey,
)
from hgm.errors import UserError
from hgm.llm.gateway import Gateway, SessionUsage
from hgm.llm.upstream import UpstreamReply
from hgm.run import RUN_TMP_PREFIX, _Jobs, check_output_dir
from hgm.sandbox import get_sandbox
from hgm.search import Evaluate, Expand
from hgm.steering import Intervention
from hgm.store import RunStore
from hgm.verify import PATCH_FILE, named_final, refuse_in_flight, task_ids
from hgm.worker import Workbench, run_job

log = logging.getLogger("hgm.replay")
_TEMP_NAME = re.compile(r"hgm-run-\d+-[a-z0-9_]{8}(?![a-z0-9_])|hgm-[a-z]+-[^\s\"'/\\]*?-[a-z0-9_]{8}(?![a-z0-9_])")
"""The harness's temporary directory names (tempfile.mkdtemp: a prefix and 8 random characters)."""
_EXPANSION_DIR = re.compile(r"hgm-expand-(\d+)-")
_ROLES = {JobKind.EVAL: ("downstream",), JobKind.EXPAND: ("diagnose", "self_improve")}


@dataclass(frozen=True)
class Divergence:
    kind: str
    """root, evaluation, expansion, llm, final or skipped."""
    where: str
    """Which recorded row (or call), e.g. `evaluation 5 (node 1 on python__transpose)`."""
    what: str


@dataclass
class ReplayReport:
    run_dir: str
    replay_dir: str
    replayed: int = 0
    """Jobs re-run (evaluations and expansions)."""
    copied: int = 0
    """Rows copied without re-running them (infra errors in the record)."""
    llm_calls: int = 0
    """Recorded answers served."""
    divergences: list[Divergence] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {**{k: v for k, v in asdict(self).items() if k != "divergences"},
                "divergences": [asdict(d) for d in self.divergences]}


@dataclass
class _RecordedSession:
    session: str
    role: str
    calls: list[LLMExchange]
    """Its forwarded calls (attempts > 0), in order: the answers a replay session gets."""
    used: int = 0


@dataclass
class _RecordedJob:
    kind: JobKind
    row: EvaluationRow | ExpansionRow
    start: float
    commit: float
    window: tuple[float, float] | None
    """(opened_at, closed_at) of its committed dispatch; None when it never committed (interrupted)."""
    sessions: dict[str, deque[_RecordedSession]] = field(default_factory=dict)

    @property
    def rerun(self) -> bool:
        return self.window is not None and self.row.status.value != "infra_error"

    @property
    def name(self) -> str:
        r = self.row
        if isinstance(r, EvaluationRow):
            return f"evaluation {r.id} (node {r.node_id} on {r.task_id})"
        return f"expansion {r.id} (of node {r.parent_id})"


def recorded_jobs(store: RunStore) -> list[_RecordedJob]:
    """The record's jobs with their committed dispatch and their LLM sessions (see the module docstring)."""
    done = {(d.kind, d.row_id): (d.opened_at, d.closed_at or d.opened_at) for d in store.dispatches()
            if d.state == DispatchState.DONE}
    jobs: list[_RecordedJob] = []
    for e in store.evaluations():
        w = done.get((JobKind.EVAL, e.id))
        jobs.append(_RecordedJob(JobKind.EVAL, e, e.started_at, w[1] if w else (e.finished_at or e.started_at), w))
    for x in store.expansions():
        w = done.get((JobKind.EXPAND, x.id))
        jobs.append(_RecordedJob(JobKind.EXPAND, x, x.started_at, w[1] if w else (x.finished_at or x.started_at), w))
    current: dict[str, tuple[_RecordedJob, _RecordedSession]] = {}
    """Gateway session id -> its job and calls (ids restart in a resumed process: a new job, a new session)."""
    for call in store.llm.exchanges():
        known = current.get(call.session)
        if known is not None and known[0].window and known[0].window[0] <= call.created_at <= known[0].window[1]:
            job, rec = known
        else:  # a new session: the earliest started job it fits that has none of its role yet
            candidates = [j for j in jobs if j.window and j.window[0] <= call.created_at <= j.window[1]
                          and call.role in _ROLES[j.kind] and (call.node_id, call.task_id) == _place(j.row)
                          and call.role not in j.sessions]
            if not candidates:
                current.pop(call.session, None)
                continue  # a lost or interrupted attempt's
            job = min(candidates, key=lambda j: j.window[0] if j.window else 0.0)
            if len(candidates) > 1 and call.role == "self_improve":  # its request names its expansion's directory
                named = _EXPANSION_DIR.search(json.dumps(store.llm.request(call.id)))
                job = next((j for j in candidates if named and j.row.id == int(named.group(1))), job)
            rec = _RecordedSession(call.session, call.role, [])
            job.sessions[call.role] = deque([rec])
            current[call.session] = (job, rec)
        if call.attempts > 0:  # refused by the gateway itself otherwise (the replay's refuses it too)
            rec.calls.append(call)
    return jobs


def _place(row: EvaluationRow | ExpansionRow) -> tuple[int, str | None]:
    return (row.node_id, row.task_id) if isinstance(row, EvaluationRow) else (row.parent_id, row.entry_task)


# -- serving the recorded answers --------------------------------------------------------------

def temp_names(text: str) -> dict[str, str]:
    """Temporary directory names in `text`, by their non-random part."""
    names: dict[str, str] = {}
    for m in _TEMP_NAME.finditer(text):
        name = m.group(0)
        prefix = "hgm-run-" if name.startswith("hgm-run-") else name[:-8]
        names.setdefault(prefix, name)
    return names


def _substitute(text: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        text = text.replace(old, new)
    return text


def first_difference(recorded: Any, replay: Any, path: str = "request") -> str | None:
    """Where two JSON values first differ, in words; None when they are equal."""
    if type(recorded) is not type(replay):
        return f"{path}: recorded {_short(recorded)}, replay {_short(replay)}"
    if isinstance(recorded, dict):
        for k in [*recorded, *(k for k in replay if k not in recorded)]:
            if k not in replay or k not in recorded:
                return f"{path}.{k}: only in the {'recording' if k in recorded else 'replay'}"
            if (d := first_difference(recorded[k], replay[k], f"{path}.{k}")) is not None:
                return d
        return None
    if isinstance(recorded, list):
        for i, (a, b) in enumerate(zip(recorded, replay, strict=False)):  # lengths compared below
            if (d := first_difference(a, b, f"{path}[{i}]")) is not None:
                return d
        if len(recorded) != len(replay):
            return f"{path}: recorded {len(recorded)} items, replay {len(replay)}"
        return None
    if isinstance(recorded, str) and recorded != replay:
        i = next((n for n, (a, b) in enumerate(zip(recorded, replay, strict=False)) if a != b),
                 min(len(recorded), len(replay)))
        return (f"{path} at character {i}: recorded {recorded[max(0, i - 30):i + 50]!r}, "
                f"replay {replay[max(0, i - 30):i + 50]!r}")
    return None if recorded == replay else f"{path}: recorded {_short(recorded)}, replay {_short(replay)}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


class StoredAnswers:
    """The gateway's upstream during a replay: the recorded answers of the job being replayed."""

    def __init__(self, store: RunStore, report: ReplayReport, paths: dict[str, str]) -> None:
        """`paths`: the record's paths that the replay has elsewhere (its run directory) -> the replay's."""
        self.store, self.report, self.paths = store, report, paths
        self.job: _RecordedJob | None = None
        self._open: dict[str, _RecordedSession] = {}
        self._lock = threading.Lock()

    def answer(self, session: SessionUsage, request: dict[str, Any]) -> UpstreamReply:
        with self._lock:
            job = self.job
            rec = self._open.get(session.session)
            if rec is None:
                queue = job.sessions.get(session.role) if job else None
                if not queue:
                    return self._miss(job, f"a {session.role} session the record does not have")
                rec = self._open[session.session] = queue.popleft()
            if rec.used >= len(rec.calls):
                return self._miss(job, f"request {rec.used + 1} of its {session.role} session; the recorded session "
                                       f"{rec.session} made {len(rec.calls)}")
            call = rec.calls[rec.used]
            rec.used += 1
            self.report.llm_calls += 1
        recorded = self.store.llm.request(call.id)
        rec_text, rep_text = json.dumps(recorded, ensure_ascii=False), json.dumps(request, ensure_ascii=False)
        rep_names = temp_names(rep_text)
        to_replay = {**self.paths, **{name: rep_names[p] for p, name in temp_names(rec_text).items() if p in rep_names}}
        where = first_difference(json.loads(_substitute(rec_text, to_replay)), request)
        if where is not None:
            self.diverge("llm", f"call {call.id} (request {rec.used} of session {call.session}, {call.role}, "
                                 f"node {call.node_id} on {call.task_id})", f"the request differs: {where}")
        body = json.loads(_substitute(call.response_json, to_replay)) if call.response_json else None
        if call.status == "ok" and body is not None:
            return UpstreamReply(200, body)
        error = call.error or f"recorded {call.status}"
        if call.status == "context_length":
            return UpstreamReply(400, body, error=error, context_length=True)
        if call.status == "upstream_failed":
            return UpstreamReply(0, None, error=error, retryable=True)
        return UpstreamReply(400, body, error=error)  # the recorded status code is not stored; 4xx passes through

    def _miss(self, job: _RecordedJob | None, what: str) -> UpstreamReply:
        self.diverge("llm", job.name if job else "outside any job", f"no recorded answer for {what}")
        return UpstreamReply(0, None, error=f"hgm replay: the record has no answer for {what}", retryable=True)

    def diverge(self, kind: str, where: str, what: str) -> None:
        self.report.divergences.append(Divergence(kind, where, what))
        log.info("divergence: %s: %s", where, what)

    def finish(self, job: _RecordedJob) -> None:
        """After a job: its recorded sessions or calls the replay did not use."""
        for queue in job.sessions.values():
            for rec in queue:
                self.diverge("llm", job.name, f"the replay never opened recorded {rec.role} session {rec.session} "
                                               f"({len(rec.calls)} calls)")
        for rec in self._open.values():
            if rec.used < len(rec.calls):
                self.diverge("llm", job.name, f"the replay made {rec.used} of the {len(rec.calls)} calls of recorded "
                                               f"{rec.role} session {rec.session}")
        self._open.clear()


# -- the replay --------------------------------------------------------------------------------

def _tree(archive: Archive, sha: str) -> str:
    return str(archive.repo.git.rev_parse(f"{sha}^{{tree}}"))


def _changed_files(a: Archive, sha_a: str, b: Archive, sha_b: str) -> list[str]:
    """Paths whose content differs between two commits of two archives."""
    def files(archive: Archive, sha: str) -> dict[str, str]:
        lines = archive.repo.git.ls_tree("-r", sha).splitlines()
        return {ln.split("\t", 1)[1]: ln.split()[2] for ln in lines}

    x, y = files(a, sha_a), files(b, sha_b)
    return sorted(p for p in x.keys() | y.keys() if x.get(p) != y.get(p))


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


@dataclass
class _Replay:
    rec_dir: Path
    out: Path
    rec: RunStore
    store: RunStore
    rec_archive: Archive
    archive: Archive
    jobs: _Jobs
    bench: Workbench
    answers: StoredAnswers
    report: ReplayReport
    nodes: dict[int, int] = field(default_factory=dict)
    """Recorded node id -> the replay's."""
    rows: dict[int, Evaluate | Expand] = field(default_factory=dict)
    """id() of a recorded job -> the replay's decision (its row)."""
    prepared: dict[int, object] = field(default_factory=dict)

    def diverge(self, kind: str, where: str, what: str) -> None:
        self.answers.diverge(kind, where, what)

    def steer(self, row: Intervention) -> None:
        """A person's intervention, where the record has it (hints and granted requests feed rewrites)."""
        node = self.nodes.get(row.node_id) if row.node_id is not None else None
        if row.node_id is not None and node is None:
            self.diverge("skipped", f"intervention {row.id} ({row.describe()})", "not copied: its agent was not "
                                                                                 "reproduced")
            return
        self.store.add_intervention(row.who, row.action, node, row.payload, row.why)

    def start(self, job: _RecordedJob) -> None:
        r = job.row
        node = r.node_id if isinstance(r, EvaluationRow) else r.parent_id
        if node not in self.nodes:
            self.diverge("skipped", job.name, f"not replayed: its agent, recorded node {node}, was not reproduced")
            return
        mine = self.nodes[node]
        if isinstance(r, EvaluationRow):
            decision: Evaluate | Expand = Evaluate(mine, r.task_id, self.store.start_evaluation(mine, r.task_id))
        else:
            decision = Expand(mine, self.store.start_expansion(mine))
        self.rows[id(job)] = decision
        if job.rerun:
            self.prepared[id(job)] = self.jobs.prepare(decision)

    def commit(self, job: _RecordedJob) -> None:
        decision = self.rows.get(id(job))
        if decision is None:
            return
        r = job.row
        if job.window is None:
            return  # in flight when the recorded process stopped: reopening the store marks it interrupted
        if not job.rerun:
            self.report.copied += 1
            if isinstance(r, EvaluationRow):
                self.store.finish_evaluation(decision.key.row_id, EvalOutcome(
                    r.status, error_type=r.error_type, error=r.error, detail=r.detail))
            else:
                self.store.finish_expansion(decision.key.row_id, ExpansionOutcome(
                    r.status, reason=r.reason, entry_task=r.entry_task, error_type=r.error_type, error=r.error))
            return
        self.answers.job = job
        outcome: EvalOutcome | ExpansionOutcome
        try:
            result = run_job(self.bench, self.prepared.pop(id(job)))  # type: ignore[arg-type]
            outcome = self.jobs.unpack(decision, result)
        except Exception as e:  # noqa: BLE001 - what the search books infra_error when a job itself breaks
            why = "".join(traceback.format_exception(e))
            outcome = EvalOutcome(EvalStatus.INFRA_ERROR, error_type=type(e).__name__, error=why) \
                if isinstance(decision, Evaluate) else \
                ExpansionOutcome(ExpansionStatus.INFRA_ERROR, reason=f"infra error: {e}"[:500],
                                 error_type=type(e).__name__, error=why)
        finally:
            self.answers.job = None
        self.answers.finish(job)
        self.report.replayed += 1
        if isinstance(decision, Evaluate):
            assert isinstance(outcome, EvalOutcome) and isinstance(r, EvaluationRow)
            self.store.finish_evaluation(decision.eval_id, outcome)
            self._compare_eval(job, r, outcome)
        else:
            assert isinstance(outcome, ExpansionOutcome) and isinstance(r, ExpansionRow)
            child = self.store.finish_expansion(decision.expansion_id, outcome)
            self.jobs.name_new_agents()
            if child is not None and r.child_id is not None:
                self.nodes[r.child_id] = child
            self._compare_expansion(job, r, outcome, child)

    def _compare_eval(self, job: _RecordedJob, r: EvaluationRow, o: EvalOutcome) -> None:
        if (o.status, o.flag) != (r.status, r.flag):
            self.diverge("evaluation", job.name, f"recorded {r.status.value}{' (' + r.flag + ')' if r.flag else ''} "
                                                 f"({r.detail or r.error_type or 'no detail'}), replayed "
                                                 f"{o.status.value}{' (' + o.flag + ')' if o.flag else ''} "
                                                 f"({o.detail or o.error_type or 'no detail'})")
        rec = _read(self.rec_dir / (r.log_dir or "-") / PATCH_FILE)
        mine = _read(self.out / (o.log_dir or "-") / PATCH_FILE)
        if rec != mine:
            where = first_difference(rec, mine, "patch.diff") if rec is not None and mine is not None else \
                f"patch.diff only in the {'recording' if mine is None else 'replay'}"
            self.diverge("evaluation", job.name, f"the solution differs: {where}")

    def _compare_expansion(self, job: _RecordedJob, r: ExpansionRow, o: ExpansionOutcome, child: int | None) -> None:
        if o.status != r.status or o.entry_task != r.entry_task:
            self.diverge("expansion", job.name, f"recorded {r.status.value} on {r.entry_task} ({r.reason[:200]}), "
                                                f"replayed {o.status.value} on {o.entry_task} ({o.reason[:200]})")
            return
        if r.status != ExpansionStatus.COMMITTED or not (r.commit and o.commit):
            if r.error_type != o.error_type:
                self.diverge("expansion", job.name, f"recorded {r.error_type}, replayed {o.error_type}")
            return
        if not self.rec_archive.has_commit(r.commit):
            self.diverge(
                "expansion",
                job.name,
                f"the recorded child's commit {r.commit} is not in the recorded archive "
                "(`hgm verify` checks the archive)",
            )
            return
        parent = self.rec_archive.parent_of(r.commit)
        rec_diff = self.rec_archive.diff(parent, r.commit) if parent else ""
        my_parent = self.archive.parent_of(o.commit)
        my_diff = self.archive.diff(my_parent, o.commit) if my_parent else ""
        if _tree(self.rec_archive, r.commit) != _tree(self.archive, o.commit):
            where = first_difference(rec_diff, my_diff, "diff")
            self.diverge("expansion", job.name, f"recorded child node {r.child_id} ({r.commit[:12]}) and replayed "
                                                f"child node {child} ({o.commit[:12]}) differ: "
                                                f"{where or 'same diff against different parents'}")


def replay_run(run_dir: Path, out: Path, *, agent: Path | None = None, benchmark_path: Path | None = None,
               sandbox_backend: str | None = None, on_start: Callable[[int], None] | None = None,
               on_job: Callable[[str, ReplayReport], None] | None = None) -> ReplayReport:
    """Replay the run in `run_dir` into the new run directory `out` (see the module docstring).
    `agent`: start from this directory instead of the recorded root agent."""
    run_dir, out = Path(run_dir).resolve(), Path(out).resolve()
    if out.resolve() == run_dir.resolve():
        raise UserError("the replay must go to a new directory, not the recorded run's own")
    check_output_dir(out)
    with RunStore.open(run_dir, readonly=True) as rec:
        refuse_in_flight(rec, run_dir, "replay")
        config = rec.config.model_copy(deep=True)
        if benchmark_path is not None:
            config.benchmark.path = benchmark_path
        if sandbox_backend is not None:
            config.sandbox.backend = sandbox_backend  # type: ignore[assignment]
        rec_archive = Archive.open(run_dir / "archive")
        jobs = recorded_jobs(rec)
        tmp = Path(tempfile.mkdtemp(prefix=f"{RUN_TMP_PREFIX}{os.getpid()}-"))  # named as a run's: see temp_names
        system_tmp, tempfile.tempdir = tempfile.tempdir, str(tmp)
        try:
            return _replay(run_dir, out, rec, rec_archive, jobs, config, tmp, agent, on_start, on_job)
        finally:
            tempfile.tempdir = system_tmp
            shutil.rmtree(tmp, ignore_errors=True)


def _replay(run_dir: Path, out: Path, rec: RunStore, rec_archive: Archive, recorded: list[_RecordedJob],
            config: HGMConfig, tmp: Path, agent: Path | None, on_start: Callable[[int], None] | None,
            on_job: Callable[[str, ReplayReport], None] | None) -> ReplayReport:
    benchmark = get_benchmark(config.benchmark)
    ids = task_ids(rec, benchmark)
    tasks = {t: benchmark.task(t) for t in ids}
    sandbox = get_sandbox(config.sandbox.backend, config.sandbox)
    report = ReplayReport(str(run_dir), str(out))
    rec_root = next(n for n in rec.nodes() if n.parent_id is None)
    assert rec_root.commit
    root_dir = Path(agent) if agent is not None else rec_archive.export(rec_root.commit, tmp / "recorded-root")
    store = RunStore.create(out, config)
    try:
        store.set_meta(MetaKey.REPLAY_OF, str(run_dir.resolve()))
        store.set_meta(MetaKey.INITIAL_AGENT, str(root_dir.resolve()) if agent is not None else
                       f"{run_dir.resolve()}/archive@{rec_root.commit}")
        archive, sha = init_archive(out / "archive", root_dir)
        root = store.add_node(None, sha, "initial agent")
        archive.set_node(root, sha)
        answers = StoredAnswers(rec, report, {str(run_dir): str(out)})
        changed = _changed_files(rec_archive, rec_root.commit, archive, sha)
        if changed:
            answers.diverge("root", "the root agent", f"its code differs from the recorded root agent's in "
                                                       f"{len(changed)} files: {', '.join(changed[:5])}")
        (tmp / "agents").mkdir()
        with Gateway(tmp / "gw.sock", llm=config.llm, budget=config.budget, recorder=store.llm.record,
                     answers=answers) as gateway:
            bench = Workbench(config, benchmark, tasks, sandbox, gateway, archive, tmp / "agents", out)
            jobs = _Jobs(out, store, archive, config, ids, lambda text: log.info(text), {root: sha})
            replay = _Replay(run_dir, out, rec, store, rec_archive, archive, jobs, bench, answers, report,
                             {rec_root.id: root})
            events: list[tuple[float, int, int, _RecordedJob | Intervention]] = sorted(
                [(j.start, 2, n, j) for n, j in enumerate(recorded)] +
                [(j.commit, 0, n, j) for n, j in enumerate(recorded)] +
                [(i.created_at, 1, i.id, i) for i in rec.interventions()], key=lambda e: e[:3])
            if on_start is not None:
                on_start(sum(j.rerun for j in recorded))
            for _, order, _, item in events:
                if isinstance(item, Intervention):
                    replay.steer(item)
                elif order == 2:
                    replay.start(item)
                else:
                    replay.commit(item)
                    if item.rerun and on_job is not None:
                        on_job(item.name, report)
    finally:
        store.close()
    with RunStore.open(out) as store:  # marks the rows in flight when a recorded process stopped interrupted
        _final(rec, store, config, benchmark, ids, replay.nodes, report)
    return report


def _final(rec: RunStore, store: RunStore, config: HGMConfig, benchmark: Benchmark, ids: list[str],
           nodes: dict[int, int], report: ReplayReport) -> None:
    """The final agent as the search names it on the replay's tree (with the record's finalists and
    policy state, node ids mapped)."""
    finalists = rec.get_meta(MetaKey.FINALISTS)
    if finalists:
        mapped = {nodes[int(k)]: v for k, v in json.loads(finalists).items() if int(k) in nodes}
        store.set_meta(MetaKey.FINALISTS, json.dumps(mapped))
    state = rec.get_meta(MetaKey.POLICY_STATE)
    if state is not None and all(rec_id == mine for rec_id, mine in nodes.items()):
        store.set_meta(MetaKey.POLICY_STATE, state)  # it holds the record's node ids: kept only where they match
    recorded = rec.get_meta(MetaKey.FINAL_AGENT)
    if recorded is None:
        return
    final = named_final(store, config, benchmark, ids)
    store.set_meta(MetaKey.FINAL_AGENT, str(final))
    if nodes.get(int(recorded)) != final:
        report.divergences.append(Divergence("final", "the final agent", f"recorded node {recorded}, replayed node "
                                                                         f"{final}"))


__all__ = ["Divergence", "ReplayReport", "StoredAnswers", "first_difference", "recorded_jobs", "replay_run",
           "temp_names"]
