"""Score a SWE-bench instance with the official `swebench` package (imported lazily).

In a fresh copy of the image's pristine /testbed (never the agent's), in a fresh sandbox of the
instance environment:
1. apply the patch with the official harness's fallbacks (`GIT_APPLY_CMDS`: git apply, --3way,
   --reject, patch --fuzz, with a reset between attempts, then the "already applied" check);
2. run the eval script `make_test_spec` produced (it records the test command's exit code), its
   output (stdout and stderr interleaved, as the official harness reads it) to test_output.txt;
   both steps with the image's own environment, as the official harness's `docker exec` (the
   instance sandbox starts every command from the image's config Env; hgm adds only HOME);
3. grade with `get_eval_report` (its log parser, its exit-code cross-check, its empty-log
   rejection): RESOLVED_FULL is solved, anything else failed.

Booking: a patch that applies with none of the fallbacks is failed (the agent's patch); so is a
test command that ran to its end but printed nothing the parser can read (the unpatched base does
print results; exit 0 there is flagged suspected tampering). A missing image, a sandbox that cannot
start, or an eval that never got through its test command is an infra_error, never the agent's
failure. Timings of each step go to timings.json.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hgm.benchmarks import TaskScore, TaskWorkspace
from hgm.benchmarks.swe_bench.dataset import SWEBenchTask
from hgm.benchmarks.swe_bench.environment import TESTBED, Environment, Environments
from hgm.benchmarks.swe_bench.workspace import agent_patch, copy_tree, drop_test_changes
from hgm.domain import ErrorType, EvalStatus, VerdictFlag
from hgm.errors import EnvironmentUnavailable, SandboxUnavailable
from hgm.sandbox.base import Limits, Mount, Sandbox

EVAL_DIR = "/hgm-eval"
OUTPUT_FILE = "test_output.txt"
REPORT_FILE = "test_output.report.txt"
"""Readable grading summary beside the raw log (the expand step's diagnosis reads both)."""
MIN_OUTPUT_BYTES = 64 * 1024 * 1024


@dataclass
class EvalRun:
    """What one scoring of one patch did."""

    status: EvalStatus
    detail: str
    error_type: ErrorType | None = None
    status_map: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    output_path: Path | None = None
    flag: VerdictFlag | None = None


def _apply_script(patch_file: str) -> str:
    """The official harness's patch-apply chain as one shell script (its commands, its order)."""
    from swebench.harness.constants import APPLY_PATCH_FAIL, APPLY_PATCH_PASS
    from swebench.harness.run_evaluation import GIT_APPLY_CMDS

    lines = ["cd /testbed", "git config --global --add safe.directory /testbed"]
    for i, cmd in enumerate(GIT_APPLY_CMDS):
        if i:
            lines.append("git checkout -- . ; git clean -fd")
        lines.append(f"if {cmd} {patch_file}; then echo {shlex.quote(APPLY_PATCH_PASS)}; exit 0; fi")
    lines.append(f"if git apply --check --reverse {patch_file}; then "
                 f"echo {shlex.quote(APPLY_PATCH_PASS + ': verified already applied')}; exit 0; fi")
    lines.append(f"echo {shlex.quote(APPLY_PATCH_FAIL)}; exit 1")
    return "\n".join(lines) + "\n"


def _infra(error_type: ErrorType, detail: str, **kw: Any) -> EvalRun:
    return EvalRun(EvalStatus.INFRA_ERROR, detail, error_type, **kw)


def run_eval(task: SWEBenchTask, patch: str, *, sandbox: Sandbox, envs: Environments, log_dir: Path,
             timeout_s: float, limits: Limits | None = None) -> EvalRun:
    """Apply `patch` (none: "") to a fresh /testbed, run the eval script, grade (module docstring)."""
    from swebench.harness.grading import get_eval_report
    from swebench.harness.infra_failure import classify_logs
    from swebench.harness.utils import make_test_spec

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    limits = limits or Limits()
    limits = Limits(memory_mb=limits.memory_mb, pids=limits.pids, file_size_mb=limits.file_size_mb,
                    output_bytes=max(limits.output_bytes, MIN_OUTPUT_BYTES))
    timings: dict[str, float] = {}
    start = time.monotonic()
    try:
        env: Environment = envs.get(task, backend=sandbox.name)
        box = envs.sandbox(env, sandbox)
    except EnvironmentUnavailable as e:
        return _infra(ErrorType.IMAGE_UNAVAILABLE, str(e))
    except SandboxUnavailable as e:
        return _infra(ErrorType.SANDBOX_UNAVAILABLE, str(e))
    timings["environment_s"] = time.monotonic() - start
    spec = make_test_spec(task.instance)
    scratch = Path(tempfile.mkdtemp(prefix=f"hgm-sweb-score-{task.id}-"))
    try:
        t = time.monotonic()
        testbed = scratch / "testbed"
        copy_tree(env.testbed, testbed, with_git=True)
        io = scratch / "eval"
        io.mkdir()
        (io / "patch.diff").write_text(patch)
        (io / "apply.sh").write_text(_apply_script(f"{EVAL_DIR}/patch.diff"))
        (io / "eval.sh").write_text(spec.eval_script)
        (log_dir / "eval.sh").write_text(spec.eval_script)
        timings["copy_testbed_s"] = time.monotonic() - t
        mounts = [Mount(testbed, TESTBED, read_only=False), Mount(io, EVAL_DIR, read_only=False)]
        try:
            if patch.strip():
                applied = box.exec(["bash", f"{EVAL_DIR}/apply.sh"], cwd=TESTBED, timeout=300,
                                   mounts=mounts, limits=limits)
                timings["apply_s"] = applied.duration_s
                (log_dir / "apply_output.txt").write_text(applied.stdout + applied.stderr)
                if not applied.ok:
                    return EvalRun(EvalStatus.FAILED, "the patch does not apply (git apply, --3way, --reject and "
                                   "patch --fuzz=5 all failed)", timings=timings)
            ran = box.exec(["bash", "-c", f"bash {EVAL_DIR}/eval.sh > {EVAL_DIR}/{OUTPUT_FILE} 2>&1"], cwd=TESTBED,
                           timeout=timeout_s, mounts=mounts, limits=limits)
        except SandboxUnavailable as e:
            return _infra(ErrorType.SANDBOX_UNAVAILABLE, str(e), timings=timings)
        timings["eval_s"] = ran.duration_s
        output = log_dir / OUTPUT_FILE
        raw = io / OUTPUT_FILE
        output.write_text(raw.read_text(errors="replace") if raw.is_file() and not raw.is_symlink() else "")
        if ran.timed_out:
            return EvalRun(EvalStatus.FAILED, f"the tests timed out after {timeout_s:.0f} s", timings=timings,
                           output_path=output)
        t = time.monotonic()
        prediction = {"instance_id": task.id, "model_name_or_path": "hgm", "model_patch": patch}
        report = get_eval_report(spec, prediction, str(output), include_tests_status=True)[task.id]
        timings["grade_s"] = time.monotonic() - t
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        timings["total_s"] = time.monotonic() - start
        (log_dir / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    return _verdict(task, spec, output, report, timings, classify_logs)


def _verdict(task: SWEBenchTask, spec: Any, output: Path, report: dict[str, Any], timings: dict[str, float],
             classify: Any) -> EvalRun:
    from swebench.harness.grading import get_logs_eval

    status_map, _ = get_logs_eval(spec, str(output))
    if not report.get("patch_successfully_applied"):  # swebench found no parsable test results
        exit_code = _finished_test_command(output.read_text(errors="replace"))
        if exit_code is not None:
            # The test command ran to its end (the unpatched base prints parsable results there,
            # validate checks that), yet swebench rejected the log: the patch's doing, never infra.
            # Results that contradict the exit code, harness markers printed by the test run, or a
            # silent exit 0 are what forged passes look like.
            forged = exit_code == 0 or bool(_parse(spec, output))
            flag = VerdictFlag.SUSPECTED_TAMPERING if forged else None
            return EvalRun(EvalStatus.FAILED, f"the test command ran (exit {exit_code}) but swebench rejected its log "
                           "(no results, or results that contradict the exit code)"
                           + (": suspected tampering" if flag else ""),
                           timings=timings, output_path=output, report=report, flag=flag)
        why = classify(str(output))
        reason = f" (swebench's classifier: {why[0]}, {why[1]})" if why else ""
        return _infra(ErrorType.EVAL_LOG_UNPARSABLE, f"the eval produced no test results the {spec.log_parser} "
                      f"parser could read{reason}; see {output}", timings=timings, output_path=output, report=report)
    tests = report.get("tests_status") or {}
    f2p, p2p = tests.get("FAIL_TO_PASS", {}), tests.get("PASS_TO_PASS", {})
    counts = (f"FAIL_TO_PASS {len(f2p.get('success', []))}/{len(spec.FAIL_TO_PASS)} pass, "
              f"PASS_TO_PASS {len(p2p.get('success', []))}/{len(spec.PASS_TO_PASS)} pass")
    status = EvalStatus.SOLVED if report.get("resolved") else EvalStatus.FAILED
    summary = [f"# {task.id}: {'resolved' if status is EvalStatus.SOLVED else 'not resolved'}; {counts}"]
    for kind, group in (("FAIL_TO_PASS", f2p), ("PASS_TO_PASS", p2p)):
        for name in group.get("failure", [])[:50]:
            summary.append(f"{kind} failing: {name} ({status_map.get(name, 'not run')})")
    output.with_name(REPORT_FILE).write_text("\n".join(summary) + "\n")
    return EvalRun(status, counts, status_map=status_map, report=report, timings=timings, output_path=output)


def _parse(spec: Any, output: Path) -> dict[str, str]:
    """What the instance's own log parser reads in the test section of the log."""
    from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT
    from swebench.harness.log_parsers import PARSER_REGISTRY

    log = output.read_text(errors="replace")
    section = log.split(START_TEST_OUTPUT, 1)[-1].split(END_TEST_OUTPUT, 1)[0]
    status_map: dict[str, str] = PARSER_REGISTRY[spec.log_parser](section, spec)
    return status_map


def _finished_test_command(log: str) -> int | None:
    """The test command's exit code if the eval script got past it (both output markers and the
    exit-code line make_test_spec inserts are in the log), else None."""
    from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT, TEST_EXIT_CODE

    start, end = log.find(START_TEST_OUTPUT), log.rfind(END_TEST_OUTPUT)
    if start < 0 or end < start:
        return None
    m = re.search(re.escape(TEST_EXIT_CODE) + r":\s*(\d+)", log[end:])
    return int(m.group(1)) if m else None


def score(task: SWEBenchTask, agent_workspace: Path | TaskWorkspace, *, sandbox: Sandbox, envs: Environments,
          log_dir: Path, timeout_s: float, limits: Limits | None = None) -> TaskScore:
    """The agent's patch (test files dropped), graded in a fresh copy of the instance environment."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    full = agent_patch(Path(agent_workspace))
    patch, dropped = drop_test_changes(full, task.test_files)
    (log_dir / "patch.diff").write_text(patch)
    if dropped:
        (log_dir / "patch.dropped-tests.diff").write_text(full)
    if not patch.strip():
        why = f"only test files changed ({', '.join(dropped[:5])}), and those are dropped" if dropped else \
            "the repository is unchanged"
        return TaskScore(EvalStatus.EMPTY_PATCH, 0.0, None, "", why)
    run = run_eval(task, patch, sandbox=sandbox, envs=envs, log_dir=log_dir, timeout_s=timeout_s, limits=limits)
    return TaskScore(run.status, run.timings.get("eval_s", 0.0), run.output_path, patch, run.detail, run.error_type,
                     run.flag)
