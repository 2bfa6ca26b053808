"""One target evaluation: the entry command on a case, then the trusted scorer (see __init__.py).

What each side sees (every path at its host name inside the sandbox):
- the entry: a fresh writable copy of the node's directory (its working directory), an empty
  output directory ($HGM_OUTPUT_DIR), the case ($HGM_CASE as JSON, $HGM_CASE_ID, and `{field}` in its
  argv), the read-only system; the gateway socket and a session token only with `llm: true`.
  Never the hidden data, the scorer, the network or a key.
- the scorer: a copy of the declared outputs only (read-only, $HGM_OUTPUTS_DIR), its own directory
  and the hidden data (read-only, $HGM_HIDDEN_DIR), the case, and $HGM_ENTRY_SECONDS (the entry's
  wall time as the harness measured it).

Booking: the entry failing, running past its time limit or leaving a declared output missing is
the target's failure (failed). Files it changed in its copy or left in the output directory
without declaring them are discarded and listed in `outside_outputs.txt` and the detail. A
scorer that crashes, runs too long, prints no JSON or a score outside [0, 1] is an infra error
(ScorerFailed), never the target's failure.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hgm.benchmarks import AgentEnvironment, TaskScore, TaskWorkspace
from hgm.benchmarks.target.spec import TargetSpec
from hgm.domain import ErrorType, EvalStatus
from hgm.errors import UserError
from hgm.sandbox.base import ExecResult, Limits, Mount, Sandbox

LOG_TAIL = 2000


@dataclass(frozen=True)
class Case:
    """One task of a target: a case of target.yaml."""

    id: str
    fields: dict[str, Any]
    problem_statement: str
    language: str = "target"


@dataclass
class TargetBenchmark:
    spec: TargetSpec
    name: str = "target"
    _cases: dict[str, Case] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in self.spec.case_list():
            text = f"Run {self.spec.description} on the case {json.dumps(c)}; the scorer decides how well it did."
            self._cases[c["id"]] = Case(c["id"], c, text)

    @property
    def uses_llm(self) -> bool:
        return self.spec.llm

    def tasks(self, subset: str = "all") -> list[Case]:
        if subset != "all":
            raise UserError(f"a target's tasks are its cases; use --subset all or --tasks a,b (not {subset!r})")
        return list(self._cases.values())

    def task(self, task_id: str) -> Case:
        if task_id not in self._cases:
            raise UserError(f"the target has no case {task_id!r}; its cases: {', '.join(list(self._cases)[:10])}")
        return self._cases[task_id]

    def make_workspace(self, task: Case, dest: Path) -> TaskWorkspace:
        raise UserError("a target has no task workspace: its evaluation runs the node itself (evaluate_node)")

    def agent_environment(self, task: Case, sandbox: Sandbox) -> AgentEnvironment:
        return AgentEnvironment(sandbox)

    def score(self, task: Case, agent_workspace: Path | TaskWorkspace, *, sandbox: Sandbox, log_dir: Path,
              timeout_s: float) -> TaskScore:
        raise UserError("a target's evaluations are scored as they run (evaluate_node); there is no stored "
                        "solution to re-grade")

    def shutdown(self, timeout: float = 10.0) -> int:
        """Nothing to end: a target runs in the run's own sandbox."""
        return 0

    def evaluate_node(self, node_dir: Path, task: Case, *, sandbox: Sandbox, limits: Limits, log_dir: Path,
                      llm_env: dict[str, str], llm_mounts: list[Mount]) -> TaskScore:
        with tempfile.TemporaryDirectory(prefix=f"hgm-target-{task.id}-") as tmp:
            return _evaluate(self.spec, Path(node_dir), task, Path(tmp).resolve(), sandbox=sandbox, limits=limits,
                             log_dir=Path(log_dir), llm_env=llm_env, llm_mounts=llm_mounts)


def _evaluate(spec: TargetSpec, node_dir: Path, task: Case, tmp: Path, *, sandbox: Sandbox, limits: Limits,
              log_dir: Path, llm_env: dict[str, str], llm_mounts: list[Mount]) -> TaskScore:
    code, out, given = tmp / "code", tmp / "out", tmp / "given"
    shutil.copytree(node_dir, code, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    out.mkdir()
    given.mkdir()
    before = _snapshot(code)
    case_json = json.dumps(task.fields)
    path = sandbox.default_path
    env = {"PATH": path, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "HGM_OUTPUT_DIR": str(out), "HGM_CASE": case_json, "HGM_CASE_ID": task.id, **llm_env}
    try:
        argv = [arg.format_map(task.fields) for arg in spec.entry]
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(f"target.yaml entry {spec.entry}: the case {task.id!r} has no field {e}") from None
    mounts = [Mount(code, str(code), read_only=False), Mount(out, str(out), read_only=False), *llm_mounts]
    start = time.monotonic()
    run = sandbox.exec(argv, cwd=str(code), env=env, timeout=spec.entry_timeout_s, mounts=mounts, limits=limits)
    entry_s = time.monotonic() - start
    _write_output(log_dir / "entry_output.txt", argv, run)
    declared = {Path(o) for o in spec.outputs}
    strays = [f"changed in its directory: {p}" for p in _changes(before, _snapshot(code))]
    strays += [f"undeclared output: {p}" for p in sorted(_snapshot(out)) if Path(p) not in declared]
    if strays:
        (log_dir / "outside_outputs.txt").write_text("\n".join(strays) + "\n")
    note = f"; discarded {len(strays)} writes outside its declared outputs" if strays else ""

    def failed(why: str) -> TaskScore:
        return TaskScore(EvalStatus.FAILED, 0.0, log_dir / "entry_output.txt", "", detail=why + note, run_s=entry_s)

    if run.timed_out:
        return failed(f"the entry ran past its time limit ({spec.entry_timeout_s:g} s) and was killed")
    if run.returncode != 0:
        return failed(f"the entry exited {run.returncode}: {_tail(run.stderr or run.stdout, 300)}")
    for name in spec.outputs:
        source = out / name
        if source.is_symlink() or not source.is_file():
            return failed(f"declared output {name} is missing" + (" (a symlink)" if source.is_symlink() else ""))
        (given / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, given / name, follow_symlinks=False)
    return _score(spec, task, given, entry_s, case_json, sandbox=sandbox, limits=limits, log_dir=log_dir, note=note)


def _score(spec: TargetSpec, task: Case, given: Path, entry_s: float, case_json: str, *, sandbox: Sandbox,
           limits: Limits, log_dir: Path, note: str) -> TaskScore:
    scorer = spec.scorer
    env = {"PATH": sandbox.default_path, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "HGM_OUTPUTS_DIR": str(given), "HGM_CASE": case_json, "HGM_CASE_ID": task.id,
           "HGM_ENTRY_SECONDS": f"{entry_s:.6f}"}
    mounts = [Mount(given, str(given)), Mount(scorer.dir, str(scorer.dir))]
    if scorer.hidden is not None:
        env["HGM_HIDDEN_DIR"] = str(scorer.hidden)
        mounts.append(Mount(scorer.hidden, str(scorer.hidden)))
    r = sandbox.exec(scorer.command, cwd=str(scorer.dir), env=env, timeout=scorer.timeout_s, mounts=mounts,
                     limits=limits)
    output = log_dir / "scorer_output.txt"
    _write_output(output, scorer.command, r)

    def infra(why: str) -> TaskScore:
        return TaskScore(EvalStatus.INFRA_ERROR, r.duration_s, output, "", detail=why,
                         error_type=ErrorType.SCORER_FAILED, run_s=entry_s)

    if r.timed_out:
        return infra(f"the scorer ran past its time limit ({scorer.timeout_s:g} s)")
    if r.returncode != 0:
        return infra(f"the scorer exited {r.returncode}: {_tail(r.stderr or r.stdout, 300)}")
    result = _last_json(r.stdout)
    if result is None:
        return infra("the scorer printed no JSON object on its last line of output")
    (log_dir / "test_output.txt").write_text(f"scorer result (the target's metrics):\n{json.dumps(result, indent=2)}\n")
    value = result.get(spec.score.key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return infra(f"the scorer's result has no number {spec.score.key!r}: {json.dumps(result)[:200]}")
    metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
                        if isinstance(v, int | float) and not isinstance(v, bool))[:300]
    rule = spec.score
    if rule.threshold is None:
        if not 0.0 <= value <= 1.0:
            return infra(f"the scorer's {rule.key} {value} is outside [0, 1]")
        return TaskScore(EvalStatus.SCORED, r.duration_s, log_dir / "test_output.txt", "", detail=metrics + note,
                         score=float(value), run_s=entry_s)
    good = value >= rule.threshold if rule.better == "higher" else value <= rule.threshold
    return TaskScore(EvalStatus.SOLVED if good else EvalStatus.FAILED, r.duration_s, log_dir / "test_output.txt", "",
                     detail=f"{rule.key} {value:.4g} {'meets' if good else 'misses'} the threshold {rule.threshold:g} "
                     f"({rule.better} is better); {metrics}{note}", run_s=entry_s)


def _last_json(stdout: str) -> dict[str, Any] | None:
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _snapshot(root: Path) -> dict[str, str]:
    """relative path -> content digest (symlinks: their target), never following links."""
    out: dict[str, str] = {}
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            full = Path(dirpath, name)
            rel = str(full.relative_to(root))
            if full.is_symlink():
                out[rel] = "link:" + os.readlink(full)
            elif full.is_file():
                out[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
    return out


def _changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def _write_output(path: Path, argv: list[str], r: ExecResult) -> None:
    how = "timed out" if r.timed_out else f"exit {r.returncode}"
    path.write_text(
        f"$ {' '.join(argv)}\n({how}, {r.duration_s:.2f} s)\n\n## stdout\n{r.stdout}\n## stderr\n{r.stderr}\n"
    )


def _tail(text: str, limit: int = LOG_TAIL) -> str:
    return " | ".join(text.strip().splitlines()[-4:])[-limit:]
