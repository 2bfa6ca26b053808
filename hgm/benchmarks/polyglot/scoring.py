"""Score a Polyglot task: the agent's solution-file changes on a fresh copy of the benchmark's own
exercise (its tests restored, un-skipped), tested offline in a sandbox.

The agent's workspace is only read for the solution files (workspace.solution_changes), so an
agent that edits or deletes tests gains nothing. The scoring copy lives in a fresh temp dir,
mounted read-write into the sandbox; toolchains and the shared dependencies (deps.py) are
mounted read-only. Verdict: exit 0 with at least one test run -> solved; "no tests ran" is a
failure; a missing toolchain, unprepared dependencies or an unavailable sandbox are infra errors.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import tempfile
from pathlib import Path

from hgm.benchmarks import TaskScore, TaskStatus, TaskWorkspace
from hgm.benchmarks.polyglot import deps
from hgm.benchmarks.polyglot.languages import SPECS
from hgm.benchmarks.polyglot.loader import PolyglotTask
from hgm.benchmarks.polyglot.workspace import Changes, apply_changes, copy_exercise, diff, solution_changes
from hgm.sandbox.base import ExecResult, Limits, Mount, Sandbox, SandboxUnavailable

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
        return TaskScore(TaskStatus.EMPTY_PATCH, 0.0, None, "", "the solution files are unchanged")
    return run_tests(task, changes, sandbox=sandbox, log_dir=log_dir, timeout_s=timeout_s, limits=limits, patch=patch)


def _infra(error_type: str, detail: str, patch: str) -> TaskScore:
    return TaskScore(TaskStatus.INFRA_ERROR, 0.0, None, patch, detail, error_type)


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
        return _infra("ToolchainMissing", f"{task.language} toolchain unusable: {toolchain.fix}", patch)
    if not deps.is_ready(task.language):
        return _infra("DepsMissing", f"{task.language} test dependencies are not prepared: run "
                      f"`hgm benchmark prepare polyglot --lang {task.language}` (needs the package registries once)",
                      patch)
    scratch = Path(tempfile.mkdtemp(prefix=f"hgm-score-{task.id}-"))
    try:
        copy = copy_exercise(task, scratch)
        apply_changes(copy, changes)
        spec.unskip(copy, task.test_files)
        for d in (".home", ".tmp"):
            (copy / d).mkdir()
        deps_dir = deps.deps_dir(task.language)

        def fill(text: str) -> str:
            return text.replace("{work}", str(copy)).replace("{deps}", str(deps_dir)).replace(
                "{tests}", " ".join(shlex.quote(t) for t in task.test_files))

        env = {**toolchain.env, **{k: fill(v) for k, v in spec.env.items()},
               "HOME": str(copy / ".home"), "TMPDIR": str(copy / ".tmp")}
        mounts = [Mount(copy, str(copy), read_only=False)]
        mounts += [Mount(d, str(d)) for d in toolchain.dirs]
        if task.language in deps.NEEDS_DEPS:
            mounts.append(Mount(deps_dir, str(deps_dir)))
        script = fill(spec.script)
        try:
            result = sandbox.exec(["bash", "-c", script], cwd=str(copy), env=env, timeout=timeout_s,
                                  mounts=mounts, limits=limits or Limits())
        except SandboxUnavailable as e:
            return _infra("SandboxUnavailable", str(e), patch)
    finally:
        _rmtree(scratch)
    log_dir.mkdir(parents=True, exist_ok=True)
    output_path = log_dir / OUTPUT_FILE
    output_path.write_text(_log_text(task, script, result))
    status, detail = verdict(task, result)
    return TaskScore(status, result.duration_s, output_path, patch, detail)


def verdict(task: PolyglotTask, result: ExecResult) -> tuple[TaskStatus, str]:
    """solved only for exit 0 with at least one test run (the count parsed from the output)."""
    if result.timed_out:
        return TaskStatus.FAILED, f"timed out after {result.duration_s:.0f} s"
    output = result.stdout + "\n" + result.stderr
    count = SPECS[task.language].count_tests(output)
    if count == 0:
        return TaskStatus.FAILED, "no tests ran"
    if task.language == "rust" and not all(f"Running {t} " in output for t in task.test_files):
        return TaskStatus.FAILED, "the benchmark's test targets did not run (Cargo.toml changed them?)"
    if result.returncode == 0:
        return TaskStatus.SOLVED, f"{count} tests passed" if count else "tests passed"
    lines = [ln.strip() for ln in (result.stdout.strip() or result.stderr).splitlines()
             if ln.strip() and not ln.startswith("Picked up ")]
    return TaskStatus.FAILED, f"exit {result.returncode}: {lines[-1][:200] if lines else 'no output'}"


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
            try:
                os.unlink(p)
            except OSError:
                pass

    shutil.rmtree(path, onerror=fix)  # onexc is 3.12+
