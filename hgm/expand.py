"""One self-modification (HGM's expand step): the boundary where its failures become data.

parent's failed task -> diagnose LLM (through the gateway, with a session of role diagnose) ->
JSON plan -> problem statement -> the parent agent runs on a git copy of its own code in the
sandbox (--self-improve, gateway role self_improve) -> the harness takes the diff -> the child is
validated in the sandbox (compiles, `coding_agent.py --help`, its own tests) -> git child commit.
When the job names a `rewriter_commit` (SICA: the best agent rewrites the base agent), that agent's
code is what runs on the copy of the parent's code; the diagnosis is still of the parent's failure.

The scheduler prepares the inputs that live in the run store (`expand_job`): the entry task is a
random task among the parent's failed / empty_patch evaluations; if it has none, the nearest
ancestor's failures are used (the same lineage, its logs); if the lineage has never failed, a
random task the parent has not solved is diagnosed from its statement alone. The `Expander` runs
on a worker with only the job (hgm/jobs.py) and never reads the store.

Every outcome is an `ExpansionOutcome` with reason, error_type, logs under
RUN_DIR/nodes/<parent>/expansions/<expansion_id>/ (`-aN` for a redone attempt N) and the LLM cost
of both sessions.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import httpx
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from hgm import prompts
from hgm.agent_runtime import AgentLLM, agent_venv, run_agent
from hgm.archive import Archive
from hgm.benchmarks import Task, describe
from hgm.benchmarks.target.spec import TargetSpec
from hgm.config import HGMConfig
from hgm.domain import ErrorType, EvalStatus, EvaluationRow, ExpansionOutcome, ExpansionStatus, count_text
from hgm.errors import ExpansionFailed, ExpansionInfra, VenvBuildError, error_type_of
from hgm.jobs import ExpandJob, GatewayAccess
from hgm.llm.gateway import GATEWAY_BASE_URL, SessionUsage
from hgm.paths import INITIAL_AGENT
from hgm.sandbox import Mount, Sandbox, limits_from
from hgm.steering import REQUESTS_ENV, REQUESTS_FILE, Action, Intervention, answers
from hgm.store_protocol import Store

DIAGNOSIS_KEYS = ("log_summary", "root_cause", "improvement", "implementation", "problem_statement", "title")
MAX_FILE_CHARS = 20_000
MAX_SOURCE_CHARS = 150_000
MAX_LOG_CHARS = 30_000
_FAILED = (EvalStatus.FAILED, EvalStatus.EMPTY_PATCH)
MEMORY_FILE = "HGM_MEMORY.json"
"""Where a target's rewriter finds DARWIN's memory of the lineage in its workspace (removed before commit)."""
_COMPILE_ALL = (
    "import pathlib, sys\n"
    "bad = []\n"
    "for p in sorted(pathlib.Path('.').rglob('*.py')):\n"
    "    try:\n"
    "        compile(p.read_bytes(), str(p), 'exec')\n"
    "    except (SyntaxError, ValueError) as e:\n"
    "        bad.append(f'{p}: {e}')\n"
    "print('\\n'.join(bad) or 'all python files compile')\n"
    "sys.exit(1 if bad else 0)\n"
)


@dataclass
class Expander:
    """What one expansion needs on a worker; `expand(job)` runs one."""

    log_root: Path
    """Where the job's log_dir is (the run directory, or a worker's scratch directory)."""
    archive: Archive
    """Where the parent's code comes from and the child is committed (the run's archive, or a
    worker node's cache)."""
    gateway: GatewayAccess
    sandbox: Sandbox
    config: HGMConfig
    tasks: dict[str, Task]
    agent_cache: Path
    """Where parent checkouts are shared (Archive.checkout)."""

    def expand(self, job: ExpandJob) -> tuple[ExpansionOutcome, str | None]:
        """The outcome, and the commit of the rewrite (child, or a rejected attempt) if one was made."""
        log_dir = self.log_root / job.log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        sessions: list[SessionUsage] = []
        attempt: list[str] = []
        try:
            diagnosis = self._diagnose(job, log_dir, sessions)
            child = self._rewrite(job, diagnosis, log_dir, sessions, attempt)
            message = self.archive.message(child)
            outcome = ExpansionOutcome(ExpansionStatus.COMMITTED, commit=child, message=message,
                                       reason=f"committed: {diagnosis['title']}", entry_task=job.entry_task)
        except ExpansionFailed as e:
            outcome = ExpansionOutcome(ExpansionStatus.FAILED, reason=e.reason, error_type=e.error_type,
                                       entry_task=job.entry_task)
        except Exception as e:  # the one boundary of an expansion: infra, recorded, the search goes on
            outcome = ExpansionOutcome(ExpansionStatus.INFRA_ERROR, reason=f"infra error: {e}"[:500],
                                       error_type=error_type_of(e), entry_task=job.entry_task,
                                       error="".join(traceback.format_exception(e)))
        outcome.log_dir = job.log_dir
        outcome.cost_usd = _total_cost(sessions)
        (log_dir / "outcome.txt").write_text(f"{outcome}\n")
        return outcome, (attempt[0] if attempt else None)

    def _fixed_rewriter_target(self) -> TargetSpec | None:
        """The target, when a fixed rewriter agent (not the node itself) rewrites it."""
        target = self.config.benchmark.target
        return target if target is not None and target.rewriter != "self" else None

    def _rewriter(self, target: TargetSpec | None) -> Path | None:
        """The fixed rewriter agent's directory (None: the node rewrites itself)."""
        if target is None:
            return None
        return INITIAL_AGENT if target.rewriter == "initial" else Path(target.rewriter)

    # -- diagnosis ---------------------------------------------------------------------------
    def _diagnose(self, job: ExpandJob, log_dir: Path, sessions: list[SessionUsage]) -> dict[str, str]:
        agent_dir = self.archive.checkout(job.commit, self.agent_cache)
        target = self._fixed_rewriter_target()
        system = prompts.TARGET_DIAGNOSE_SYSTEM if target else prompts.DIAGNOSE_SYSTEM
        user = (prompts.TARGET_DIAGNOSE_USER if target else prompts.DIAGNOSE_USER).format(
            agent_code=agent_source(agent_dir), task_id=job.entry_task,
            task_statement=self.tasks[job.entry_task].problem_statement, chat_log=job.chat_log,
            test_output=job.test_output, lineage=job.lineage,
            task_status=job.entry_status or "not run by this agent",
            benchmark=target.description if target else describe(self.config.benchmark.name))
        if job.hints:
            user += prompts.DIAGNOSE_HINTS.format(hints="\n".join(f"- {h}" for h in job.hints))
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        model = self.config.llm.diagnose
        token = self.gateway.open_session("diagnose", model, node_id=job.parent_id, task_id=job.entry_task)
        transcript = log_dir / "diagnose.md"
        try:
            for attempt in (1, 2):
                status, payload = self._chat(token, {"model": model, "messages": messages})
                _append(transcript, f"request {attempt}", messages[-1]["content"])
                if status != 200:
                    usage = self.gateway.session_usage(token)
                    why = (payload.get("error") or {}).get("message", str(payload))
                    _append(transcript, f"error (HTTP {status})", why)
                    if usage.upstream_failed or usage.run_capped:
                        raise ExpansionInfra(f"diagnose LLM unavailable: {why}")
                    raise ExpansionFailed(ErrorType.DIAGNOSIS_FAILED,
                                          f"diagnosis failed: the diagnose LLM answered HTTP {status}: {why}")
                content = payload["choices"][0]["message"].get("content") or ""
                _append(transcript, f"answer {attempt}", content)
                try:
                    plan = parse_diagnosis(content)
                except ValueError as e:
                    if attempt == 2:
                        raise ExpansionFailed(ErrorType.DIAGNOSIS_FAILED,
                                              f"diagnosis failed: malformed answer ({e})") from None
                    messages += [{"role": "assistant", "content": content},
                                 {"role": "user", "content": prompts.DIAGNOSE_RETRY.format(error=e)}]
                    continue
                (log_dir / "diagnosis.json").write_text(json.dumps(plan, indent=2) + "\n")
                return plan
            raise AssertionError("unreachable")
        finally:
            sessions.append(self.gateway.close_session(token))

    def _chat(self, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One chat completion through the gateway's socket, like an agent's (so it works the same
        through a worker node's relay)."""
        timeout = self.config.llm.request_worst_case_s + 60
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.gateway.socket_path)), timeout=timeout) as c:
            r = c.post(f"{GATEWAY_BASE_URL}/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"})
        try:
            payload = r.json()
        except ValueError:
            payload = {"error": {"message": r.text[:500]}}
        return r.status_code, payload if isinstance(payload, dict) else {"error": {"message": str(payload)[:500]}}

    # -- the rewrite -------------------------------------------------------------------------
    def _rewrite(self, job: ExpandJob, plan: dict[str, str], log_dir: Path, sessions: list[SessionUsage],
                 attempt: list[str]) -> str:
        parent_id, parent_sha, task_id, expansion_id = job.parent_id, job.commit, job.entry_task, job.expansion_id
        target = self._fixed_rewriter_target()
        if target:
            statement = prompts.TARGET_REWRITE_STATEMENT.format(
                task_id=task_id, benchmark=target.description, entry=" ".join(target.entry),
                outputs=", ".join(target.outputs), memory_file=MEMORY_FILE, **plan)
        else:
            statement = prompts.SELF_IMPROVE_STATEMENT.format(task_id=task_id,
                                                              benchmark=describe(self.config.benchmark.name), **plan)
        requests_file = (log_dir / "agent" / REQUESTS_FILE).resolve()  # in the agent's session directory
        statement += prompts.REQUESTS.format(requests_file=requests_file, answers=job.answers)
        message = prompts.COMMIT_MESSAGE.format(
            parent_id=parent_id, task_id=task_id, task_status=job.entry_status or "not run",
            **{k: " ".join(plan[k].split()) for k in ("title", "root_cause", "improvement")})
        agent_dir = self._rewriter(target) or self.archive.checkout(job.rewriter_commit or parent_sha,
                                                                    self.agent_cache)  # who rewrites
        model = self.config.llm.self_improve
        with tempfile.TemporaryDirectory(prefix=f"hgm-expand-{expansion_id}-") as tmp:
            work = self.archive.export_repo(parent_sha, Path(tmp) / "agent_src")
            allowed = _requirement_names(_requirements_text(work)) | {
                canonicalize_name(p) for p in job.granted_packages
            }
            base = git.Repo(work).head.commit.hexsha
            if self.config.benchmark.target is not None and job.memory:  # DARWIN's memory, for the rewriter
                (log_dir / "memory.json").write_text(job.memory)
                (work / MEMORY_FILE).write_text(job.memory)
            token = self.gateway.open_session("self_improve", model, node_id=parent_id, task_id=task_id)
            try:
                run = run_agent(
                    agent_dir,
                    work,
                    base,
                    statement,
                    language="python",
                    llm=AgentLLM(self.gateway.socket_path, token, model, self.gateway.context_window(model)),
                    sandbox=self.sandbox,
                    limits=limits_from(self.config.sandbox),
                    timeout_s=self.config.sandbox.agent_timeout_s,
                    log_dir=log_dir,
                    self_improve=target is None,
                    mounts=[Mount(Path(f), f) for f in job.granted_files if Path(f).is_file()],
                    env={REQUESTS_ENV: str(requests_file)},
                )
            finally:
                usage = self.gateway.close_session(token)
                sessions.append(usage)
            (work / MEMORY_FILE).unlink(missing_ok=True)  # the memory is the harness's, never part of the child
            if usage.upstream_failed or usage.run_capped:
                raise ExpansionInfra(f"self-improve LLM unavailable: {usage.failure}")
            # The diff is taken with the archive's own git (never the agent-writable .git of the copy).
            child = self.archive.commit_dir(work, message, parent=parent_sha)
        diff = self.archive.diff(parent_sha, child)
        (log_dir / "patch.diff").write_text(diff)
        crashed = run.timed_out or run.exit_code != 0
        how = "timed out" if run.timed_out else f"exited {run.exit_code}"
        if not diff.strip():
            if crashed:
                stderr = run.stderr_path.read_text(errors="replace") if run.stderr_path.is_file() else ""
                raise ExpansionFailed(ErrorType.AGENT_CRASHED, f"agent crashed while rewriting itself ({how}); "
                                      f"no change: {_tail(stderr, 4)}")
            raise ExpansionFailed(ErrorType.EMPTY_DIFF, "empty diff: the agent changed nothing in its code"
                                  + (f" ({usage.failure})" if usage.failure else ""))
        self.archive.set_ref(f"refs/hgm/attempts/{expansion_id}", child)  # inspectable even if rejected
        attempt.append(child)
        self.validate(child, log_dir, allowed_packages=allowed)
        return child  # the scheduler points refs/hgm/expansions/<id> at it when it commits the result

    # -- validation --------------------------------------------------------------------------
    def validate(self, sha: str, log_dir: Path, allowed_packages: set[str] | None = None) -> None:
        """Checks of a rewritten agent, each in the sandbox; ExpansionFailed names the first that fails.
        `allowed_packages`: the names its requirements.txt may use (its parent's and the granted ones)."""
        report = log_dir / "validation.txt"
        report.write_text("")
        with tempfile.TemporaryDirectory(prefix="hgm-validate-") as tmp:
            child = self.archive.export(sha, Path(tmp) / "agent")
            if self._fixed_rewriter_target():  # not an agent: its Python files must still compile
                path = self.sandbox.default_path
                r = self.sandbox.exec(
                    ["python3", "-c", _COMPILE_ALL],
                    cwd=str(child),
                    timeout=self.config.sandbox.validate_timeout_s,
                    env={"PATH": path, "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"},
                    mounts=[Mount(child, str(child))],
                    limits=limits_from(self.config.sandbox),
                )
                _append(report, f"compile: exit {r.returncode}", f"{r.stdout}\n{r.stderr}")
                if not r.ok:
                    raise ExpansionFailed(ErrorType.VALIDATION_FAILED,
                                          f"validation failed: compile: {_tail(r.stdout + r.stderr)}")
                return
            if allowed_packages is not None:
                extra = sorted(_requirement_names(_requirements_text(child)) - allowed_packages)
                if extra:
                    _append(report, "requirements", f"not allowed: {', '.join(extra)}")
                    raise ExpansionFailed(ErrorType.VALIDATION_FAILED,
                                          f"validation failed: requirements.txt adds {', '.join(extra)}, which its "
                                          f"parent does not use and nobody granted; ask for it in {REQUESTS_FILE}")
            try:
                venv = agent_venv(child)
            except VenvBuildError as e:
                _append(report, "requirements", str(e))
                raise ExpansionFailed(ErrorType.VALIDATION_FAILED,
                                      f"validation failed: its requirements do not install: {_tail(str(e))}") from None
            python = str(venv / "bin" / "python")
            if not (child / "tests").is_dir():
                _append(report, "tests", "no tests/ directory")
                raise ExpansionFailed(ErrorType.VALIDATION_FAILED,
                                      "validation failed: the agent's tests/ directory is gone")
            checks = [
                ("compile", [python, "-c", _COMPILE_ALL]),
                ("--help", [python, "coding_agent.py", "--help"]),
                ("own tests", [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests"]),
            ]
            env = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1",
                   "LANG": "C.UTF-8"}
            mounts = [Mount(child, str(child), read_only=False), Mount(venv, str(venv))]
            for name, argv in checks:
                r = self.sandbox.exec(argv, cwd=str(child), env=env, timeout=self.config.sandbox.validate_timeout_s,
                                      mounts=mounts, limits=limits_from(self.config.sandbox))
                _append(report, f"{name}: exit {r.returncode}{' (timed out)' if r.timed_out else ''}",
                        f"{r.stdout}\n{r.stderr}")
                if not r.ok:
                    why = "timed out" if r.timed_out else f"exit {r.returncode}"
                    raise ExpansionFailed(ErrorType.VALIDATION_FAILED,
                                          f"validation failed: {name} ({why}): {_tail(r.stdout + r.stderr)}")


# -- pieces that need no sandbox ----------------------------------------------------------

def expand_job(store: Store, run_dir: Path, *, parent_id: int, commit: str, expansion_id: int,
               attempt: int, task_ids: list[str], seed: int, log_dir: str,
               rewriter_commit: str | None = None) -> ExpandJob:
    """The scheduler's half of an expansion: what the job needs from the store and the run's logs,
    and from a person's steering (hints, granted requests, answers). `rewriter_commit`: the agent
    that rewrites `commit`'s code, when not the parent itself."""
    rng = random.Random(f"{seed}-{expansion_id}")
    entry, evaluation = choose_entry_task(store, parent_id, task_ids, rng)
    chat, tests = _eval_logs(run_dir, evaluation)
    status = None if evaluation is None else (f"scored {evaluation.score:.3f}" if evaluation.score is not None
                                              else evaluation.status.value)
    interventions = store.interventions()
    return ExpandJob(expansion_id, attempt, parent_id, commit, seed, entry, status, chat, tests,
                     lineage(store, parent_id), log_dir, rewriter_commit, memory(store, parent_id),
                     hints=open_hints(store, parent_id, interventions), **granted(store, parent_id, interventions))


def open_hints(store: Store, node_id: int, interventions: list[Intervention]) -> tuple[str, ...]:
    """The hints for `node_id` that no finished rewrite of it (started after the hint) has used yet."""
    done = [x.id for x in store.expansions(node_id) if x.status in (ExpansionStatus.COMMITTED, ExpansionStatus.FAILED)]
    return tuple(str(h.payload.get("text", "")) for h in interventions
                 if h.action == Action.HINT and h.node_id == node_id
                 and not any(x > int(h.payload.get("after_expansion", 0)) for x in done))


def granted(store: Store, node_id: int, interventions: list[Intervention]) -> dict[str, Any]:
    """What the run's granted requests give a rewrite of `node_id`, and the answers to its lineage's requests."""
    requests = {r.id: r for r in store.agent_requests()}
    decided = answers(interventions)
    packages = tuple(sorted({str(a.payload["package"]) for a in decided.values()
                             if a.action == Action.GRANT and a.payload.get("package")}))
    files = tuple(sorted({str(a.payload["path"]) for a in decided.values()
                          if a.action == Action.GRANT and a.payload.get("path")}))
    parents = {n.id: n.parent_id for n in store.nodes()}
    line: set[int] = set()
    node: int | None = node_id
    while node is not None:
        line.add(node)
        node = parents[node]
    lines = []
    for rid, r in sorted(requests.items()):
        if r.node_id not in line:
            continue
        a = decided.get(rid)
        if a is None:
            lines.append(f"- #{rid} {r.kind.value} {r.what}: not answered yet")
        elif a.action == Action.DECLINE:
            lines.append(f"- #{rid} {r.kind.value} {r.what}: declined by {a.who}: {a.why}")
        else:
            where = f" (read-only at {a.payload['path']})" if a.payload.get("path") else ""
            lines.append(
                f"- #{rid} {r.kind.value} {r.what}: granted by {a.who}{where}" + (f": {a.why}" if a.why else "")
            )
    text = ("\nAnswers to this lineage's earlier requests:\n" + "\n".join(lines) + "\n") if lines else ""
    return {"granted_packages": packages, "granted_files": files, "answers": text}


def _requirements_text(agent_dir: Path) -> str:
    path = agent_dir / "requirements.txt"
    return path.read_text(errors="replace") if path.is_file() else ""


def _requirement_names(text: str) -> set[str]:
    """The canonical package names a requirements text names (lines that do not parse are left to
    the venv build, which rejects them)."""
    names = set()
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith(("#", "-")):
            try:
                names.add(str(canonicalize_name(Requirement(line).name)))
            except InvalidRequirement:
                continue
    return names


def choose_entry_task(store: Store, parent_id: int, task_ids: list[str],
                      rng: random.Random) -> tuple[str, EvaluationRow | None]:
    """(task, the evaluation whose logs explain the failure, or None). See the module docstring."""
    parents = {n.id: n.parent_id for n in store.nodes()}
    node: int | None = parent_id
    while node is not None:
        failed = [e for e in store.evaluations(node) if e.task_id in task_ids and _fell_short(e)]
        if failed:
            chosen = rng.choice(failed)
            return chosen.task_id, chosen
        node = parents[node]
    solved = {e.task_id for e in store.evaluations(parent_id) if e.status == EvalStatus.SOLVED}
    candidates = [t for t in task_ids if t not in solved] or list(task_ids)
    return rng.choice(candidates), None


def lineage(store: Store, node_id: int) -> str:
    """What each version from the root to `node_id` changed and how it scored (oldest first)."""
    nodes = {n.id: n for n in store.nodes()}
    chain = []
    node: int | None = node_id
    while node is not None:
        chain.append(nodes[node])
        node = nodes[node].parent_id
    lines = []
    for n in reversed(chain):
        won = [e.success for e in store.evaluations(n.id) if e.success is not None]
        change = " ".join(n.message.split())[:600] if n.parent_id is not None else "the initial agent"
        lines.append(f"- node {n.id}: {change}\n  score: solved {count_text(sum(won))} of {len(won)} evaluated tasks")
    failed = [x for x in store.expansions(node_id) if x.status == ExpansionStatus.FAILED and x.reason]
    if failed:
        lines.append("Earlier rewrites of this agent that were rejected:")
        lines += [f"- {x.reason[:300]}" for x in failed[-5:]]
    return "\n".join(lines)


def _fell_short(e: EvaluationRow) -> bool:
    """Failed, empty patch, or scored below 1: worth a diagnosis."""
    return e.status in _FAILED or (e.status == EvalStatus.SCORED and (e.score or 0.0) < 1.0)


def _mean_score(store: Store, node_id: int) -> float | None:
    won = [e.success for e in store.evaluations(node_id) if e.success is not None]
    return sum(won) / len(won) if won else None


def memory(store: Store, node_id: int) -> str:
    """DARWIN's persistent memory of the lineage root -> `node_id`, as JSON: each modification (its
    title and the reason given for it), the mean score of the version before and after it and the
    change it brought (None where a version has no counted evaluation yet), and the rewrites of
    `node_id` that were rejected, with why. Computed from the store."""
    nodes = {n.id: n for n in store.nodes()}
    chain: list[int] = []
    node: int | None = node_id
    while node is not None:
        chain.append(node)
        node = nodes[node].parent_id
    changes = []
    for nid in reversed(chain[:-1]):
        n = nodes[nid]
        title, _, reason = n.message.strip().partition("\n")
        before = _mean_score(store, n.parent_id) if n.parent_id is not None else None
        after = _mean_score(store, nid)
        changes.append({"node": nid, "parent": n.parent_id, "modification": title.strip(),
                        "reason": " ".join(reason.split()), "score_before": before, "score_after": after,
                        "score_change": None if before is None or after is None else after - before})
    rejected = [{"reason": x.reason[:300]} for x in store.expansions(node_id)
                if x.status == ExpansionStatus.FAILED and x.reason][-5:]
    return json.dumps({"lineage": chain[::-1], "root_score": _mean_score(store, chain[-1]),
                       "current_score": _mean_score(store, node_id), "modifications": changes,
                       "rejected_rewrites": rejected}, indent=2) + "\n"


def agent_source(agent_dir: Path) -> str:
    """The agent's text files as one markdown document (long files are shortened)."""
    parts = []
    for p in sorted(agent_dir.rglob("*")):
        if (
            p.is_file()
            and p.suffix in (".py", ".md", ".txt", ".toml", ".yaml", ".json")
            and "__pycache__" not in p.parts
        ):
            rel = p.relative_to(agent_dir)
            parts.append(f"## {rel}\n```\n{_shorten(p.read_text(errors='replace'), MAX_FILE_CHARS)}\n```")
    return _shorten("\n\n".join(parts), MAX_SOURCE_CHARS)


def parse_diagnosis(text: str) -> dict[str, str]:
    """The plan from a model's answer, taking it as real models send it: a JSON object bare, fenced
    or among prose, possibly wrapped in one outer object, with keys in any case or spelling
    (Problem Statement, problemStatement), extra keys, lists or objects as values, trailing commas;
    the first object that holds a plan wins. Only problem_statement is needed (else it is made from
    improvement + implementation); a missing title is made from the improvement. ValueError says
    what is wrong."""
    found = False
    for obj in _json_objects(text):
        found = True
        plan = _plan(obj)
        if plan is not None:
            return plan
    if found:
        raise ValueError("the JSON object has no problem_statement (nor an improvement to make one from)")
    raise ValueError("no JSON object found in the answer")


_SYNONYMS = {"problem": "problem_statement", "statement": "problem_statement", "taskdescription": "problem_statement",
             "summary": "log_summary", "rootcause": "root_cause", "cause": "root_cause", "committitle": "title"}


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every JSON object in the text, fenced ones first, each also tried without trailing commas."""
    fenced = re.findall(r"```[a-zA-Z]*\s*(\{.*?\})\s*```", text, flags=re.S)
    decoder = json.JSONDecoder()
    for chunk in [*fenced, text]:
        for variant in dict.fromkeys([chunk, re.sub(r",(\s*[}\]])", r"\1", chunk)]):
            i = variant.find("{")
            while i != -1:
                try:
                    obj, end = decoder.raw_decode(variant, i)
                except ValueError:
                    i = variant.find("{", i + 1)
                    continue
                if isinstance(obj, dict):
                    yield obj
                i = variant.find("{", end)


def _plan(obj: dict[str, Any]) -> dict[str, str] | None:
    """The plan in one JSON object (or in the one object it wraps), or None if it has none."""
    norm = {re.sub(r"[^a-z]", "", str(k).lower()): v for k, v in obj.items()}
    fields = {k: _text(norm.get(k.replace("_", ""))) for k in DIAGNOSIS_KEYS}
    for alias, key in _SYNONYMS.items():
        fields[key] = fields[key] or _text(norm.get(alias))
    if not fields["problem_statement"] and fields["improvement"]:
        fields["problem_statement"] = "\n\n".join(v for v in (fields["improvement"], fields["implementation"]) if v)
    if not fields["problem_statement"]:
        inner = [v for v in obj.values() if isinstance(v, dict)]
        return _plan(inner[0]) if len(inner) == 1 else None
    fields["title"] = (fields["title"] or fields["improvement"] or "self-improvement").splitlines()[0][:70]
    for k in ("log_summary", "root_cause", "improvement", "implementation"):
        fields[k] = fields[k] or "(not given)"
    return fields


def _text(value: Any) -> str:
    """A plan field as text: lists become lines, objects `key: value` lines."""
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value).strip()
    if isinstance(value, dict):
        return "\n".join(f"{k}: {_text(v)}" for k, v in value.items()).strip()
    return "" if value is None else str(value).strip()


def _eval_logs(run_dir: Path, evaluation: EvaluationRow | None) -> tuple[str, str]:
    if evaluation is None:
        none = "(this agent has no recorded run on this task; propose an improvement from the statement)"
        return none, none
    if not evaluation.log_dir:
        return "(no log recorded)", "(no log recorded)"
    d = run_dir / evaluation.log_dir
    chat = d / "agent" / "chat.md"
    if not chat.is_file():  # a target: what its entry command printed
        chat = d / "entry_output.txt"
    tests = sorted(d.glob("test_output*.txt")) or sorted(d.glob("test*.txt"))
    return (_shorten(chat.read_text(errors="replace"), MAX_LOG_CHARS) if chat.is_file() else "(no chat log)",
            _shorten("\n".join(t.read_text(errors="replace") for t in tests), MAX_LOG_CHARS // 2)
            if tests else "(no test output)")


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters cut ...]\n{text[-half:]}"


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:])[:600]


def _append(path: Path, heading: str, body: str) -> None:
    with path.open("a") as f:
        f.write(f"## {heading}\n\n{body}\n\n")


def _total_cost(sessions: list[SessionUsage]) -> float | None:
    costs = [s.cost_usd for s in sessions]
    return None if any(c is None for c in costs) else float(sum(c for c in costs if c is not None))


__all__ = ["Expander", "agent_source", "choose_entry_task", "expand_job", "lineage", "parse_diagnosis"]
