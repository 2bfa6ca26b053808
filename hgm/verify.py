"""`hgm verify RUN`: re-check a recorded run without an LLM or a key.

Two parts, both read-only on the run directory:

- **Re-grading.** For every counted evaluation (or a seeded sample), the stored patch
  (RUN/<log_dir>/patch.diff, what the scorer diffed out of the agent's workspace) is applied with
  `git apply` to a fresh workspace of the same task (`Benchmark.make_workspace`) and scored by the
  benchmark's own `score` in a fresh sandbox: the same code path as the run, so any benchmark kind
  works. A re-grade that disagrees with the store is graded a second time, and named:
  `flaky` (the two re-grades disagree with each other), `tampered` (both agree with each other and
  not with the store, or the re-grade flags tampering the store did not: the stored verdict does
  not follow from the stored solution), `infra` (the re-grade could not run, or the stored patch
  does not re-apply to the task exactly, e.g. it held bytes that were not UTF-8: counted apart,
  never the agent's mismatch).
- **Integrity.** Invariants of the store and the archive, each a named `Check`: every node's
  commit is in the archive and its branch points at it; a child's commit is a child of its
  parent's; each committed expansion's diff (archive) equals the patch its log recorded;
  the clade counters the search rebuilds (search.rebuild_tree) equal counts over the rows;
  dispatches and evaluations agree (one committed dispatch per finished job); the budget
  (evaluations, run caps, each evaluation's tokens against its LLM calls); the final agent is
  the one the policy names on the rebuilt tree.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hgm.archive import Archive
from hgm.baselines import stage_tasks
from hgm.benchmarks import Benchmark, Task, get_benchmark
from hgm.config import HGMConfig
from hgm.domain import COUNTED, DispatchState, ErrorType, EvalStatus, EvaluationRow, ExpansionStatus, JobKind, MetaKey
from hgm.errors import UserError
from hgm.sandbox import Sandbox, get_sandbox
from hgm.search import make_policy, rebuild_tree
from hgm.steering import folded
from hgm.store import RunStore

PATCH_FILE = "patch.diff"


class Verdict:
    """What a re-grade says about one stored verdict."""

    AGREES = "agrees"
    FLAKY = "flaky"
    TAMPERED = "tampered"
    INFRA = "infra"


@dataclass(frozen=True)
class Regrade:
    eval_id: int
    node_id: int
    task_id: str
    stored: str
    """The stored status (solved, failed, empty_patch), with `+flagged` if the store flagged it."""
    regraded: list[str]
    """Each re-grade's status (one, or two when the first disagreed)."""
    verdict: str
    detail: str = ""

    @property
    def mismatch(self) -> bool:
        return self.verdict in (Verdict.FLAKY, Verdict.TAMPERED)


@dataclass(frozen=True)
class Check:
    name: str
    checked: int
    """How many things were checked (rows, commits, ...)."""
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class VerifyReport:
    run_dir: str
    checks: list[Check]
    regrades: list[Regrade]
    counted: int
    """Counted evaluations in the store (re-graded: all, or a sample)."""
    sample_seed: int | None = None

    @property
    def mismatches(self) -> list[Regrade]:
        return [r for r in self.regrades if r.mismatch]

    @property
    def infra(self) -> list[Regrade]:
        return [r for r in self.regrades if r.verdict == Verdict.INFRA]

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def exit_code(self) -> int:
        """1: a mismatch or an integrity failure; 3: none, but some re-grades could not run; else 0."""
        if self.mismatches or self.failed_checks:
            return 1
        return 3 if self.infra else 0

    def to_json(self) -> dict[str, object]:
        return {"run_dir": self.run_dir, "counted": self.counted, "sample_seed": self.sample_seed,
                "regraded": len(self.regrades), "by_verdict": dict(Counter(r.verdict for r in self.regrades)),
                "mismatches": len(self.mismatches), "infra": len(self.infra),
                "checks": [{**asdict(c), "ok": c.ok} for c in self.checks],
                "regrades": [asdict(r) for r in self.regrades], "exit_code": self.exit_code()}


# -- re-grading ------------------------------------------------------------------------------

def apply_patch(workspace: Path, patch: str) -> str | None:
    """Apply a stored patch to a task workspace with git; why it does not apply, or None."""
    if not patch.strip():
        return None
    done = subprocess.run(["git", "-c", "core.hooksPath=/dev/null", "apply", "--whitespace=nowarn", "-"],
                          cwd=workspace, input=patch.encode(), capture_output=True, check=False)
    return done.stderr.decode(errors="replace").strip()[:500] or "git apply failed" if done.returncode else None


@dataclass(frozen=True)
class Grade:
    status: str
    """solved / failed / empty_patch, `+flag` appended when the scorer flagged it; or infra_error."""
    detail: str
    patch: str = ""


def grade_patch(benchmark: Benchmark, task: Task, patch: str, *, sandbox: Sandbox, timeout_s: float,
                log_dir: Path) -> Grade:
    """The stored patch on a fresh workspace of the task, scored by the benchmark in a fresh sandbox."""
    work = Path(tempfile.mkdtemp(prefix=f"hgm-verify-{task.id}-"))
    try:
        ws = benchmark.make_workspace(task, work / getattr(task, "name", "workspace"))
        why = apply_patch(ws.path, patch)
        if why is not None:
            return Grade(EvalStatus.INFRA_ERROR, f"the stored patch does not apply to a fresh workspace: {why}")
        score = benchmark.score(task, ws, sandbox=sandbox, log_dir=log_dir, timeout_s=timeout_s)
    except Exception as e:  # noqa: BLE001 - the re-grade's own boundary: a harness failure is infra, never a mismatch
        return Grade(EvalStatus.INFRA_ERROR, f"{type(e).__name__}: {e}"[:500])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if score.status == EvalStatus.INFRA_ERROR:
        return Grade(EvalStatus.INFRA_ERROR, f"{score.error_type}: {score.detail}"[:500], score.patch)
    return Grade(_verdict(score.status, getattr(score, "score", None), score.flag), score.detail, score.patch)


def _verdict(status: EvalStatus, score: float | None, flag: object) -> str:
    """A verdict as one comparable text: the status, a fractional score, `+flagged`."""
    shown = f" {score:.6g}" if status == EvalStatus.SCORED and score is not None else ""
    return status.value + shown + ("+flagged" if flag else "")


def _stored(e: EvaluationRow) -> str:
    return _verdict(e.status, e.score, e.flag)


def name_verdict(stored: str, regraded: list[str]) -> str:
    """What one or two re-grades (a second only when the first disagreed) say of a stored verdict."""
    if regraded == [stored]:
        return Verdict.AGREES
    if len(set(regraded)) > 1:  # the second re-grade agrees with the store, or differs from both
        return Verdict.FLAKY
    return Verdict.TAMPERED


def regrade(run_dir: Path, e: EvaluationRow, benchmark: Benchmark, tasks: dict[str, Task], *, sandbox: Sandbox,
            config: HGMConfig, log_root: Path) -> Regrade:
    """Re-grade one stored evaluation (twice when the first re-grade disagrees): see the module docstring."""
    stored = _stored(e)
    patch_file = run_dir / (e.log_dir or "") / PATCH_FILE
    if not e.log_dir or not patch_file.is_file():
        return Regrade(e.id, e.node_id, e.task_id, stored, [], Verdict.INFRA,
                       f"no stored patch ({patch_file}): nothing to re-grade")
    if e.task_id not in tasks:
        return Regrade(e.id, e.node_id, e.task_id, stored, [], Verdict.INFRA, f"the benchmark has no task {e.task_id}")
    patch = patch_file.read_text(errors="replace")
    if "\ufffd" in patch:  # the scorers write patches as text: bytes that were not UTF-8 are lost
        return Regrade(e.id, e.node_id, e.task_id, stored, [], Verdict.INFRA,
                       "the stored patch holds U+FFFD, as which bytes that were not UTF-8 are written: the "
                       "solution may not re-apply exactly")
    grades: list[Grade] = []
    for n in (1, 2):
        g = grade_patch(benchmark, tasks[e.task_id], patch, sandbox=sandbox, timeout_s=config.sandbox.test_timeout_s,
                        log_dir=log_root / f"eval-{e.id}-a{n}")
        grades.append(g)
        if g.status == EvalStatus.INFRA_ERROR:
            return Regrade(e.id, e.node_id, e.task_id, stored, [x.status for x in grades], Verdict.INFRA, g.detail)
        if g.patch != patch:
            return Regrade(e.id, e.node_id, e.task_id, stored, [x.status for x in grades], Verdict.INFRA,
                           "the stored patch does not re-apply exactly (the re-graded workspace diffs differently)")
        if g.status == stored:
            break
    statuses = [g.status for g in grades]
    verdict = name_verdict(stored, statuses)
    if verdict == Verdict.AGREES:
        detail = ""
    elif len({(g.status, g.detail) for g in grades}) == 1:
        detail = f"stored {stored}; re-graded {grades[0].status} twice ({grades[0].detail})"
    else:
        detail = f"stored {stored}; re-graded " + ", then ".join(f"{g.status} ({g.detail})" for g in grades)
    return Regrade(e.id, e.node_id, e.task_id, stored, statuses, verdict, detail[:800])


# -- integrity -------------------------------------------------------------------------------

def check_commits(store: RunStore, archive: Archive | None) -> Check:
    nodes = store.nodes()
    if archive is None:
        return Check("commits in the archive", len(nodes), ["the run has no archive/ directory"])
    failures = []
    by_id = {n.id: n for n in nodes}
    for n in nodes:
        if not n.commit or not archive.has_commit(n.commit):
            failures.append(f"node {n.id}: commit {n.commit} is not in the archive")
            continue
        try:
            branch = archive.resolve(f"node-{n.id}")
        except UserError:
            branch = None
        if branch != n.commit:
            failures.append(f"node {n.id}: branch node-{n.id} points at {branch or 'nothing'}, not {n.commit[:12]}")
        parent = by_id.get(n.parent_id) if n.parent_id is not None else None
        if parent is not None and parent.commit and archive.parent_of(n.commit) != parent.commit:
            failures.append(f"node {n.id}: its commit's parent is {archive.parent_of(n.commit)}, not node "
                            f"{parent.id}'s commit {parent.commit[:12]}")
    return Check("commits in the archive", len(nodes), failures)


def check_diffs(store: RunStore, archive: Archive | None, run_dir: Path) -> Check:
    committed = [x for x in store.expansions() if x.status == ExpansionStatus.COMMITTED]
    if archive is None:
        return Check("children's diffs", len(committed), ["the run has no archive/ directory"])
    nodes = {n.id: n for n in store.nodes()}
    failures = []
    for x in committed:
        child, parent = nodes.get(x.child_id or -1), nodes.get(x.parent_id)
        if child is None or parent is None:
            failures.append(f"expansion {x.id}: its child node {x.child_id} is not in the store")
            continue
        if child.commit != x.commit:
            failures.append(f"expansion {x.id}: commit {x.commit} but its child node {child.id} has {child.commit}")
        if not (
            child.commit and parent.commit and archive.has_commit(child.commit) and archive.has_commit(parent.commit)
        ):
            continue  # reported by check_commits
        try:
            ref = archive.resolve(f"refs/hgm/expansions/{x.id}")
        except UserError:
            ref = None
        if ref != child.commit:
            failures.append(f"expansion {x.id}: refs/hgm/expansions/{x.id} points at {ref or 'nothing'}")
        recorded = run_dir / (x.log_dir or "") / PATCH_FILE
        if not x.log_dir or not recorded.is_file():
            failures.append(f"expansion {x.id}: no recorded diff ({recorded})")
        elif archive.diff(parent.commit, child.commit) != recorded.read_text():
            failures.append(f"expansion {x.id}: node {child.id}'s diff against node {parent.id} in the archive differs "
                            f"from the recorded {x.log_dir}/{PATCH_FILE}")
    return Check("children's diffs", len(committed), failures)


def check_counters(store: RunStore, tasks: list[str]) -> Check:
    """The counters the search rebuilds against counts over the rows (own, and clade by descendant sets)."""
    evals = [e for e in store.evaluations() if e.status in COUNTED]
    failures: list[str] = []
    try:
        tree = rebuild_tree(store, tasks)
    except (ValueError, KeyError, UserError) as e:  # UserError: an evaluated task not in the task list
        return Check("clade counters", len(evals), [f"the search cannot rebuild its tree: {e}"])
    children: dict[int | None, list[int]] = {}
    for n in store.nodes():
        children.setdefault(n.parent_id, []).append(n.id)
    for agent in tree.agents.values():
        clade, todo = set(), [agent.id]
        while todo:
            node = todo.pop()
            clade.add(node)
            todo += children.get(node, [])
        own = [e for e in evals if e.node_id == agent.id]
        mine = [e for e in evals if e.node_id in clade]
        want = (sum(e.success or 0.0 for e in own), sum(1 - (e.success or 0.0) for e in own),
                sum(e.success or 0.0 for e in mine), sum(1 - (e.success or 0.0) for e in mine))
        got = (agent.own_successes, agent.own_failures, agent.clade_successes, agent.clade_failures)
        if any(abs(g - w) > 1e-9 for g, w in zip(got, want, strict=True)):
            failures.append(f"node {agent.id}: rebuilt counters n_s, n_f, N_s, N_f = {got}, the rows say {want}")
    return Check("clade counters", len(tree.agents), failures)


def check_dispatches(store: RunStore) -> Check:
    """One committed (done) dispatch per finished job, attempts 1..k, other attempts lost; an interrupted
    job's last dispatch interrupted; an in-flight job's last one open; no dispatch without its row."""
    failures = []
    by_job: dict[tuple[JobKind, int], list[tuple[int, DispatchState]]] = {}
    for d in store.dispatches():
        by_job.setdefault((d.kind, d.row_id), []).append((d.attempt, d.state))
    rows: list[tuple[JobKind, int, str, str | None]] = \
        [(JobKind.EVAL, e.id, e.status.value, e.error_type) for e in store.evaluations()] + \
        [(JobKind.EXPAND, x.id, x.status.value, x.error_type) for x in store.expansions()]
    for kind, row_id, status, error_type in rows:
        attempts = sorted(by_job.pop((kind, row_id), []))
        name = f"{'evaluation' if kind == JobKind.EVAL else 'expansion'} {row_id}"
        if [a for a, _ in attempts] != list(range(1, len(attempts) + 1)):
            failures.append(f"{name}: dispatch attempts {[a for a, _ in attempts]} are not 1..k")
            continue
        states = [s for _, s in attempts]
        want = DispatchState.OPEN if status == "in_flight" else \
            DispatchState.INTERRUPTED if error_type == ErrorType.INTERRUPTED else DispatchState.DONE
        if not states or states[-1] != want or any(s != DispatchState.LOST for s in states[:-1]):
            failures.append(f"{name} is {status}{f' ({error_type})' if error_type else ''} but its dispatches are "
                            f"{', '.join(s.value for s in states) or 'none'} (want lost..., {want.value})")
    failures += [f"dispatch of {kind} {row_id} has no row" for kind, row_id in by_job]
    return Check("dispatches", len(rows), failures)


def check_budget(store: RunStore, config: HGMConfig) -> Check:
    evals = store.evaluations()
    counted = sum(e.status in COUNTED for e in evals)
    failures = []
    budget = config.search.max_task_evals + folded(store.interventions(), gate=False).extra_evals  # + `budget +N`
    if counted > budget:
        failures.append(f"{counted} counted evaluations exceed the budget of {budget}")
    total = store.llm.usage()
    b = config.budget
    if b.max_usd_run is not None and total.known_cost_usd > b.max_usd_run + 1e-9:
        failures.append(f"LLM spend ${total.known_cost_usd:.4f} exceeds the run's cap ${b.max_usd_run}")
    if b.max_tokens_run is not None and total.prompt_tokens + total.completion_tokens > b.max_tokens_run:
        failures.append(f"{total.prompt_tokens + total.completion_tokens} LLM tokens exceed the run's cap "
                        f"{b.max_tokens_run}")
    # An evaluation's tokens are its session's; pairs evaluated more than once or cut by a stop are
    # summed together, and those whose job never reported (interrupted, lost) are skipped.
    pairs: dict[tuple[int, str], list[EvaluationRow]] = {}
    for e in evals:
        pairs.setdefault((e.node_id, e.task_id), []).append(e)
    lost = {(d.kind, d.row_id) for d in store.dispatches() if d.state != DispatchState.DONE}
    checked = 0
    for (node, task), rows in pairs.items():
        if any(e.status == EvalStatus.IN_FLIGHT or (JobKind.EVAL, e.id) in lost for e in rows):
            continue
        checked += 1
        used = store.llm.usage(role="downstream", node_id=node, task_id=task)
        booked = (sum(e.prompt_tokens for e in rows), sum(e.completion_tokens for e in rows))
        if booked != (used.prompt_tokens, used.completion_tokens):
            failures.append(f"node {node} on {task}: the evaluation books {booked[0]}+{booked[1]} tokens, its LLM "
                            f"calls used {used.prompt_tokens}+{used.completion_tokens}")
    return Check("budget accounting", checked + 1, failures)


def named_final(store: RunStore, config: HGMConfig, benchmark: Benchmark, tasks: list[str]) -> int:
    """The agent the search names final on the tree it rebuilds from `store` (its policy with that
    policy's saved state, the finalists if they were chosen, never an agent a person vetoed, rejected
    or has yet to approve), as Search.final_agent does on a resumed run."""
    tree = rebuild_tree(store, tasks)
    stages = None
    if config.search.policy == "dgm-paper":
        stages = stage_tasks(config.search.dgm_paper.stages, tasks, lambda name: [t.id for t in benchmark.tasks(name)])
    policy = make_policy(config.search, tasks, stages)
    state = store.get_meta(MetaKey.POLICY_STATE)
    policy.restore(json.loads(state) if state else None, tree)  # dgm-paper's archive, for archive_best
    finalists = store.get_meta(MetaKey.FINALISTS)
    allowed = {int(k) for k in json.loads(finalists)} if finalists else None
    unseen = folded(store.interventions(), gate=config.steer.gates_rewrites).blocked(list(tree.agents),
                                                                                            tree.root_id)
    ranked = [i for i in policy.rank(tree) if i not in unseen] or [tree.root_id]
    return next((i for i in ranked if allowed is None or i in allowed), ranked[0])


def check_final(store: RunStore, config: HGMConfig, benchmark: Benchmark, tasks: list[str]) -> Check:
    recorded = store.get_meta(MetaKey.FINAL_AGENT)
    if recorded is None:
        return Check("final agent", 0)
    try:
        best = named_final(store, config, benchmark, tasks)
    except (ValueError, KeyError, UserError) as e:
        return Check("final agent", 1, [f"the search cannot rebuild its tree: {e}"])
    failures = [] if int(recorded) == best else [
        f"the store names node {recorded} final; the policy on the rebuilt tree names node {best}"]
    return Check("final agent", 1, failures)


# -- the whole check -------------------------------------------------------------------------

def refuse_in_flight(store: RunStore, run_dir: Path, what: str) -> None:
    """UserError when the run has work in flight: it is running, or was killed and not resumed."""
    if any(e.status == EvalStatus.IN_FLIGHT for e in store.evaluations()) or \
            any(x.status == ExpansionStatus.IN_FLIGHT for x in store.expansions()):
        raise UserError(f"{run_dir} has work in flight (it is running, or was killed and not resumed); {what} it once "
                        f"it has finished, or after `hgm run --resume {run_dir}`")


def task_ids(store: RunStore, benchmark: Benchmark) -> list[str]:
    """The run's task list (its config's ids or subset)."""
    b = store.config.benchmark
    return list(b.task_ids) if b.task_ids else [t.id for t in benchmark.tasks(b.subset)]


def verify_run(run_dir: Path, *, sample: int | None = None, seed: int | None = None, workers: int = 1,
               benchmark_path: Path | None = None, sandbox_backend: str | None = None, log_root: Path | None = None,
               on_start: Callable[[int], None] | None = None, on_done: Callable[[Regrade], None] | None = None
               ) -> VerifyReport:
    """Check the run in `run_dir` (read-only): integrity checks, then re-grades (see the module docstring).
    `sample` re-grades that many counted evaluations, drawn with `seed` (random when None, reported)."""
    run_dir = Path(run_dir)
    with RunStore.open(run_dir, readonly=True) as store:
        refuse_in_flight(store, run_dir, "verify")
        config = store.config.model_copy(deep=True)
        if benchmark_path is not None:
            config.benchmark.path = benchmark_path
        if sandbox_backend is not None:
            config.sandbox.backend = sandbox_backend  # type: ignore[assignment]
        benchmark = get_benchmark(config.benchmark)
        ids = task_ids(store, benchmark)
        archive = Archive.open(run_dir / "archive") if (run_dir / "archive").is_dir() else None
        checks = [check_commits(store, archive), check_diffs(store, archive, run_dir), check_counters(store, ids),
                  check_dispatches(store), check_budget(store, config), check_final(store, config, benchmark, ids)]
        counted = [e for e in store.evaluations() if e.status in COUNTED]
    chosen, used_seed = counted, None
    if sample is not None and sample < len(counted):
        used_seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
        chosen = sorted(random.Random(used_seed).sample(counted, sample), key=lambda e: e.id)
    tasks = {t: benchmark.task(t) for t in {e.task_id for e in chosen} if t in ids}
    sandbox = get_sandbox(config.sandbox.backend, config.sandbox)
    own_logs = log_root is None
    logs = Path(tempfile.mkdtemp(prefix="hgm-verify-logs-")) if log_root is None else Path(log_root)
    if on_start is not None:
        on_start(len(chosen))
    regrades: list[Regrade] = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(regrade, run_dir, e, benchmark, tasks, sandbox=sandbox, config=config,
                                   log_root=logs) for e in chosen]
            for f in as_completed(futures):
                regrades.append(f.result())
                if on_done is not None:
                    on_done(regrades[-1])
    finally:
        if own_logs:
            shutil.rmtree(logs, ignore_errors=True)
    regrades.sort(key=lambda r: r.eval_id)
    return VerifyReport(str(run_dir), checks, regrades, len(counted), used_seed)


__all__ = ["Check", "Regrade", "Verdict", "VerifyReport", "apply_patch", "grade_patch", "name_verdict",
           "named_final", "verify_run"]
