"""Score a Polyglot task: the agent's solution-file changes on a fresh copy of the benchmark's own
exercise (its tests restored, un-skipped), tested offline in a sandbox, with a tamper-evident verdict.

The agent's workspace is only read for the solution files (workspace.solution_changes), so an
agent that edits or deletes tests gains nothing. The scoring copy lives in a fresh temp dir,
mounted read-write into the sandbox; its test files and hgm's reporter are mounted read-only over
it (instrument.py); toolchains and the shared dependencies (deps.py) are mounted read-only.

The verdict. A solution runs inside the test runner's process, so the runner's exit code and
console summary prove nothing: a solution can print "8 passed" and exit 0 when it is loaded. So
`solved` needs all of:
- the exit code of a run where every test passed and only hgm's canary failed (0 without a
  canary); a timeout, or any other exit code, is a plain failure;
- a report through a channel the harness controls (report.py): hgm's reporter inside the runner
  reads a fresh per-run key from stdin before the solution is loaded, and signs every record it
  appends to a file outside the scoring copy; the report must be complete and authentic, and
  end with the runner's own end-of-run record (rust: libtest has no end hook, so a completion
  record of every test stands in for it);
- every test the benchmark's files define (testcases.py, parsed before anything runs) reported
  exactly once, as passed; no reported test failed;
- hgm's canary (canary.py: a copy of a real test with another test's expected value, placed at
  random, where the language has one) reported failed;
- no tampering record: the reporter's snapshot of the test framework, taken before the solution
  loaded, unchanged after every test (python, javascript);
- the console summary agreeing with the report (skipped when the output was truncated);
- a solution whose source does not name the test framework or the reporter (tripwire.py).
Without all of that, a run that otherwise looks passed is `failed` with the flag
SUSPECTED_TAMPERING and a detail starting "suspected tampering: ". A genuine test failure stays a
plain failure.

What this defends against: a solution that forges the runner's output (at load time: module top
level, Go init(), Java static initialisers, C++ global constructors, ELF init arrays; or later),
exits early with 0, writes forged lines to every file descriptor it inherited, writes, truncates
or deletes the report file, skips or deselects tests, kills the runner's parent, or sleeps past
the timeout; a Rust solution's build script or proc-macro (refused: it would run at build time);
and, from inside the runner's process, one that replaces the framework's assertions, proxies its
globals, patches its collector or its report hooks, returns a value that equals anything, or
calls hgm's reporter with passes for every test it can find. What it cannot defend against: a
solution that attacks the harness from inside the runner's process on purpose and with
knowledge of it — tells hgm's canary from the benchmark's own tests (it would have to know the
upstream tests by heart), patches the framework and restores it before the reporter looks, or
reads the reporter's memory or code and writes exactly what the verdict expects. The README's
safety model has the table per language. The flag and the logs (test_output.txt) are there for
a person to look. Missing toolchains, unprepared dependencies and an unavailable sandbox are
infra errors.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import stat
import tempfile
from pathlib import Path

from hgm.benchmarks import TaskScore, TaskWorkspace
from hgm.benchmarks.polyglot import deps
from hgm.benchmarks.polyglot.instrument import Instrumented, instrument, rust_targets
from hgm.benchmarks.polyglot.languages import SPECS
from hgm.benchmarks.polyglot.loader import PolyglotTask
from hgm.benchmarks.polyglot.report import Report, new_key, read_report
from hgm.benchmarks.polyglot.tripwire import framework_references
from hgm.benchmarks.polyglot.workspace import Changes, apply_changes, copy_exercise, diff, solution_changes
from hgm.domain import ErrorType, EvalStatus, VerdictFlag
from hgm.errors import SandboxUnavailable
from hgm.sandbox.base import ExecResult, Limits, Mount, Sandbox

OUTPUT_FILE = "test_output.txt"
PATCH_FILE = "patch.diff"


def score(
    task: PolyglotTask,
    agent_workspace: Path | TaskWorkspace,
    *,
    sandbox: Sandbox,
    log_dir: Path,
    timeout_s: float,
    limits: Limits | None = None,
) -> TaskScore:
    """Test what the agent changed among the task's solution files (see module docstring)."""
    changes = solution_changes(task, Path(agent_workspace))
    patch = diff(task, changes)
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / PATCH_FILE).write_text(patch)
    if not changes:
        return TaskScore(EvalStatus.EMPTY_PATCH, 0.0, None, "", "the solution files are unchanged")
    return run_tests(task, changes, sandbox=sandbox, log_dir=log_dir, timeout_s=timeout_s, limits=limits, patch=patch)


def _infra(error_type: ErrorType, detail: str, patch: str) -> TaskScore:
    return TaskScore(EvalStatus.INFRA_ERROR, 0.0, None, patch, detail, error_type)


def run_tests(
    task: PolyglotTask,
    changes: Changes,
    *,
    sandbox: Sandbox,
    log_dir: Path,
    timeout_s: float,
    limits: Limits | None = None,
    patch: str = "",
) -> TaskScore:
    """Lay `changes` onto a fresh copy of the exercise and run all its tests in `sandbox`."""
    spec = SPECS[task.language]
    toolchain = spec.toolchain()
    if not toolchain.ok:
        return _infra(ErrorType.TOOLCHAIN_MISSING, f"{task.language} toolchain unusable: {toolchain.fix}", patch)
    if not deps.is_ready(task.language):
        return _infra(ErrorType.DEPS_MISSING, f"{task.language} test dependencies are not prepared (or an older hgm "
                      f"prepared them): run `hgm benchmark prepare polyglot --lang {task.language}` (needs the "
                      "package registries once)", patch)
    scratch = Path(tempfile.mkdtemp(prefix=f"hgm-score-{task.id}-"))
    try:
        copy = copy_exercise(task, scratch)
        apply_changes(copy, changes)
        spec.unskip(copy, task.test_files)
        inst = instrument(task, copy)
        if inst.refused:
            return TaskScore(EvalStatus.FAILED, 0.0, None, patch, inst.refused)
        for d in (".home", ".tmp"):
            (copy / d).mkdir()
        channel = scratch / "channel"
        channel.mkdir()
        deps_dir = deps.deps_dir(task.language)
        fills = {
            "{work}": str(copy),
            "{deps}": str(deps_dir),
            "{channel}": str(channel),
            "{name}": shlex.quote(task.name),
            "{tests}": " ".join(shlex.quote(t) for t in task.test_files),
            "{targets}": " ".join(shlex.quote(t) for t in rust_targets(task)) if task.language == "rust" else "",
        }

        def fill(text: str) -> str:
            for placeholder, value in fills.items():
                text = text.replace(placeholder, value)
            return text

        env = {**toolchain.env, **{k: fill(v) for k, v in spec.env.items()},
               "HOME": str(copy / ".home"), "TMPDIR": str(copy / ".tmp"), "HGM_REPORT": str(channel / "report")}
        mounts = [Mount(copy, str(copy), read_only=False), Mount(channel, str(channel), read_only=False)]
        mounts += [Mount(copy / p, str(copy / p)) for p in inst.read_only if (copy / p).exists()]
        mounts += [Mount(d, str(d)) for d in toolchain.dirs]
        if task.language in deps.NEEDS_DEPS:
            mounts.append(Mount(deps_dir, str(deps_dir)))
        script = fill(spec.script)
        key = new_key()
        try:
            result = sandbox.exec(["bash", "-c", script], cwd=str(copy), env=env, timeout=timeout_s,
                                  mounts=mounts, limits=limits or Limits(), stdin=key + "\n")
        except SandboxUnavailable as e:
            return _infra(ErrorType.SANDBOX_UNAVAILABLE, str(e), patch)
        report = Report()
        for name in inst.reports:
            read_report(channel / name, key, report)
    finally:
        _rmtree(scratch)
    status, detail, flag = verdict(task, result, inst, report)
    if hits := framework_references(task.language, changes):
        named = f"the solution names the test framework or hgm's reporter ({'; '.join(hits[:3])})"
        detail = (f"{detail}; {named}" if flag else
                  f"{TAMPERING}: {named}" + ("" if status is EvalStatus.SOLVED else f"; {detail}"))
        status, flag = EvalStatus.FAILED, VerdictFlag.SUSPECTED_TAMPERING
    log_dir.mkdir(parents=True, exist_ok=True)
    output_path = log_dir / OUTPUT_FILE
    output_path.write_text(_log_text(task, script, result) + _report_text(inst, report, detail))
    return TaskScore(status, result.duration_s, output_path, patch, detail, flag=flag)


TAMPERING = "suspected tampering"


def verdict(task: PolyglotTask, result: ExecResult, inst: Instrumented,
            report: Report) -> tuple[EvalStatus, str, VerdictFlag | None]:
    """solved, or failed with the reason (and the flag, when the run looks tampered with): see
    the module docstring."""
    if result.timed_out:
        return EvalStatus.FAILED, f"timed out after {result.duration_s:.0f} s", None
    if not any(not t.optional and not t.canary for t in inst.expected):
        return EvalStatus.FAILED, "the benchmark's test files define no tests", None
    passing = {t.name: t.passing for t in inst.expected}
    canaries = {t.name for t in inst.expected if t.canary}
    required = [t.name for t in inst.expected if not t.optional]
    outcomes: dict[str, list[str]] = {}
    for name, outcome in report.tests:
        outcomes.setdefault(name, []).append(outcome)
    missing = [n for n in required if n not in outcomes]
    not_passed = [n for n, outs in outcomes.items()  # an extra test (not in the files) only counts if failed
                  if (any(o != passing[n] for o in outs) if n in passing else "failed" in outs)]
    failing = [n for n in required if n in not_passed and n not in canaries  # a skip is no genuine failure
               and any(o not in (passing[n], "skipped") for o in outcomes[n])]
    clean_exit = SPECS[task.language].failed_exit if canaries else 0  # every test passed, the canary failed
    reasons = []
    if report.problem is None:
        reasons += [f"the reporter found the test framework changed ({what})" for what in report.tampering[:3]]
        if passed_canaries := [n for n in canaries if n in not_passed]:
            reasons.append(f"hgm's canary (a copy of a real test made to fail) was reported "
                           f"{'/'.join(outcomes[passed_canaries[0]])}: {_names(passed_canaries)}")
    summary = SPECS[task.language].console(result.stdout + "\n" + result.stderr)
    ran = summary is not None and sum(summary) > 0  # the runner says tests ran (a build that failed: none)
    if result.returncode != 0 and (result.returncode != clean_exit or (failing and not reasons)
                                   or not (ran or reasons)):
        if report.problem is None and failing:
            return (
                EvalStatus.FAILED,
                f"{len(failing)} of {_tests(len(required) - len(canaries))} failed: {_names(failing)}",
                None,
            )
        lines = [ln.strip() for ln in (result.stdout.strip() or result.stderr).splitlines()
                 if ln.strip() and not ln.startswith("Picked up ")]
        return EvalStatus.FAILED, f"exit {result.returncode}: {lines[-1][:200] if lines else 'no output'}", None
    if report.problem:
        reasons.append(report.problem)
    elif not reasons:
        if result.returncode != clean_exit:
            reasons.append("the runner exited as if hgm's canary had passed")
        end = "fail" if canaries else "ok"
        if inst.ends and report.ends != [end] * len(inst.reports):
            said = "all passed, hgm's canary included" if canaries else "tests failed"
            reasons.append(f"the runner's own end-of-run record says {said}" if report.ends
                           else "the runner never reached its end of run")
        if missing:
            reasons.append(f"{len(missing)} of {_tests(len(required))} never reported: {_names(missing)}")
        if not_passed:
            reasons.append(f"tests reported as not passed: {_names(not_passed)}")
        if repeated := [n for n, outs in outcomes.items() if len(outs) > 1]:
            reasons.append(f"tests reported more than once: {_names(repeated)}")
    if not reasons and not result.output_truncated:
        said_by_report = [_console_outcome(o, passing.get(n, "passed"), n in canaries) for n, o in report.tests]
        passed, failed = said_by_report.count("passed"), said_by_report.count("failed")
        if summary != (passed, failed):
            said = f"{summary[0]} passed, {summary[1]} failed" if summary else "no summary"
            reasons.append(f"the console summary ({said}) disagrees with the report ({passed} passed, {failed} failed)")
    if reasons:
        return (EvalStatus.FAILED, f"{TAMPERING}: exit {result.returncode} but " + "; ".join(reasons),
                VerdictFlag.SUSPECTED_TAMPERING)
    solved = sum(o == passing.get(n) for n, o in report.tests if n not in canaries)
    return EvalStatus.SOLVED, f"{_tests(solved)} passed", None


def _console_outcome(outcome: str, passing: str, canary: bool) -> str:
    """What the runner's console counts a reported test as: passed, failed or skipped (hgm's
    canary passes its check by failing)."""
    if outcome == "skipped":
        return "skipped"
    return "passed" if (outcome == passing) != canary else "failed"


def _tests(n: int) -> str:
    return f"{n} test" + ("" if n == 1 else "s")


def _names(names: list[str], limit: int = 3) -> str:
    """A few test names, each shortened to its last part (method, title, fn)."""
    short = [re.split(r"::|#| > ", n)[-1][:60] for n in names[:limit]]
    return ", ".join(short) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _report_text(inst: Instrumented, report: Report, detail: str) -> str:
    lines = [
        f"\n## verdict\n{detail}\n",
        f"expected tests: {len(inst.expected)}; reported: {len(report.tests)}"
        f"; end of run: {', '.join(report.ends) or 'none'}"
        + (f"; problem: {report.problem}" if report.problem else ""),
    ]
    canaries = {t.name for t in inst.expected if t.canary}
    lines += [
        f"  {outcome:9} {name}"
        + ("   <- hgm's canary (a copy of a real test made to fail): must fail" if name in canaries else "")
        for name, outcome in report.tests
    ]
    lines += [f"tampering found by the reporter: {what}" for what in report.tampering]
    return "\n".join(lines) + "\n"


def _log_text(task: PolyglotTask, script: str, result: ExecResult) -> str:
    head = (f"# {task.id}: exit {result.returncode}, {result.duration_s:.2f} s"
            f"{', TIMED OUT' if result.timed_out else ''}{', output truncated' if result.output_truncated else ''}\n"
            f"# $ {script.replace(chr(10), chr(10) + '# $ ')}\n")
    return f"{head}\n## stdout\n{result.stdout}\n## stderr\n{result.stderr}\n"


def _rmtree(path: Path) -> None:
    """Remove a tree the sandbox wrote into (it may have made directories unwritable)."""

    def fix(func: object, p: str, exc: object) -> None:
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
        except OSError:
            pass
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(p)

    shutil.rmtree(path, onerror=fix)  # onexc is 3.12+
