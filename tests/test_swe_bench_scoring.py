"""SWE-bench scoring on both backends, with the local instances (tests/data/swe_bench): their images
built here through the Docker Engine API from localhost/debian:bookworm (once; the engine caches
them), docker running the image, bwrap running its exported root filesystem.

Verdicts: gold patch solved, nothing changed empty_patch, a wrong fix failed, a patch that only
edits tests empty_patch (test changes are dropped: never solved), a patch that does not apply
failed, a patch that forges passes failed (flagged), an eval that produces no log infra_error,
a missing image infra_error.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import subprocess
from pathlib import Path

import pytest

from hgm.benchmarks.swe_bench import SWEBenchBenchmark
from hgm.benchmarks.swe_bench.scoring import run_eval
from hgm.domain import EvalStatus, VerdictFlag
from hgm.errors import SandboxUnavailable
from hgm.sandbox import get_sandbox

from engines import missing_engine

pytestmark = [pytest.mark.slow, pytest.mark.docker]
LOCAL = Path(__file__).parent / "data" / "swe_bench"
BASE_IMAGE = "localhost/debian:bookworm"
TASK = "r1chardj0n3s__parse-1.22.3"


@pytest.fixture(scope="session")
def bench() -> SWEBenchBenchmark:
    bench = SWEBenchBenchmark.open(str(LOCAL), build_base=BASE_IMAGE)
    try:
        _ = bench.envs.client  # connects to the engine
    except SandboxUnavailable as e:
        missing_engine(f"no Docker engine to build the instance images: {e}")
    return bench


@pytest.fixture(scope="session", params=["docker", "bwrap"])
def sandbox(request, bench):
    try:
        if request.param == "docker":
            return get_sandbox("docker")
        return get_sandbox("bwrap")
    except SandboxUnavailable as e:
        missing_engine(f"{request.param} backend unavailable: {e}")


def apply(ws: Path, patch: str) -> None:
    subprocess.run(["git", "apply", "-"], cwd=ws, input=patch, text=True, check=True)


def test_verdicts_on_both_backends(bench, sandbox, tmp_path):
    task = bench.task(TASK)

    def score(name: str, edit=None):
        ws = bench.make_workspace(task, tmp_path / name / "testbed")
        if edit:
            edit(ws.path)
        return bench.score(task, ws, sandbox=sandbox, log_dir=tmp_path / name / "logs", timeout_s=600)

    gold = score("gold", lambda ws: apply(ws, task.instance["patch"]))
    assert gold.status is EvalStatus.SOLVED, f"{gold.detail}\n{gold.output_path.read_text()[-3000:]}"
    assert gold.detail == "FAIL_TO_PASS 4/4 pass, PASS_TO_PASS 51/51 pass" and gold.test_s > 0

    assert score("empty").status is EvalStatus.EMPTY_PATCH

    def wrong(ws: Path) -> None:  # "fixes" the wrong branch: dates, not times
        core = ws / "parse" / "__init__.py"
        core.write_text(core.read_text().replace("return dt.date()", "return dt.date() or dt.timetz()"))

    failed = score("wrong", wrong)
    assert failed.status is EvalStatus.FAILED and failed.detail.startswith("FAIL_TO_PASS 0/4"), failed.detail
    report = failed.output_path.with_name("test_output.report.txt").read_text()
    assert "FAIL_TO_PASS failing: tests/test_parse.py::test_flexible_time_preserves_timezone[+0530] (FAILED)" in report

    def tests_only(ws: Path) -> None:  # the test patch itself, and a test that skips the new ones
        apply(ws, task.instance["test_patch"])
        (ws / "tests" / "conftest.py").write_text("import pytest\ncollect_ignore = ['test_parse.py']\n")

    cheat = score("tests-only", tests_only)
    assert cheat.status is EvalStatus.EMPTY_PATCH and "only test files changed" in cheat.detail


def test_a_patch_that_does_not_apply_fails_and_no_log_is_an_infra_error(bench, sandbox, tmp_path):
    task = bench.task(TASK)
    bad = task.instance["patch"].replace("-        return dt.time()", "-        return dt.time(0)")
    run = run_eval(task, bad, sandbox=sandbox, envs=bench.envs, log_dir=tmp_path / "bad", timeout_s=600)
    assert run.status is EvalStatus.FAILED and "does not apply" in run.detail
    assert "Patch Apply Failed" in (tmp_path / "bad" / "apply_output.txt").read_text()

    silent = dataclasses.replace(task, instance={**task.instance, "eval_script": "#!/bin/bash\necho no tests here\n"})
    run = run_eval(silent, task.instance["patch"], sandbox=sandbox, envs=bench.envs, log_dir=tmp_path / "silent",
                   timeout_s=600)
    assert run.status is EvalStatus.INFRA_ERROR and run.error_type == "EvalLogUnparsable", run.detail


def test_a_patch_that_forges_passes_fails_flagged(bench, sandbox, tmp_path):
    """The patched package writes a PASSED line for every graded test to every inherited file
    descriptor at import, then ends the test process with exit 1: swebench rejects the log (results
    contradict the exit code); the eval script got through its test command, so that is the patch's
    doing: failed and flagged."""
    task = bench.task(TASK)
    original = (bench.envs.get(task, backend=sandbox.name).testbed / "parse" / "__init__.py").read_text()
    graded = [*task.instance["FAIL_TO_PASS"], *task.instance["PASS_TO_PASS"]]
    lines = "".join(f"PASSED {t}\n" for t in graded).encode()
    forge = (f"import os\nfor fd in range(1, 64):  # pytest captures fds 1 and 2; its saved copies are above\n"
             f"    try: os.write(fd, {lines!r})\n    except OSError: pass\nos._exit(1)\n")
    forging = "".join(
        difflib.unified_diff(
            original.splitlines(keepends=True),
            (original + forge).splitlines(keepends=True),
            "a/parse/__init__.py",
            "b/parse/__init__.py",
        )
    )
    run = run_eval(task, forging, sandbox=sandbox, envs=bench.envs, log_dir=tmp_path / "forged", timeout_s=600)
    assert run.status is EvalStatus.FAILED and run.flag == VerdictFlag.SUSPECTED_TAMPERING, run.detail
    assert "exit 1" in run.detail


def test_an_image_that_cannot_be_had_is_an_infra_error(bench, sandbox, tmp_path):
    task = bench.task(TASK)
    gone = dataclasses.replace(task, image="localhost/hgm/no-such-instance:latest", build_context=None)
    run = run_eval(gone, task.instance["patch"], sandbox=sandbox, envs=bench.envs, log_dir=tmp_path / "gone",
                   timeout_s=60)
    assert run.status is EvalStatus.INFRA_ERROR and run.error_type == "ImageUnavailable", run.detail
    assert "could not be pulled" in run.detail


@pytest.mark.parametrize("task_id", ["r1chardj0n3s__parse-1.22.4", "tkem__cachetools-7.3.3", "tkem__cachetools-7.3.1"])
def test_the_other_instances_gold_solved_base_not(bench, sandbox, tmp_path, task_id):
    task = bench.task(task_id)
    gold = run_eval(task, task.instance["patch"], sandbox=sandbox, envs=bench.envs, log_dir=tmp_path / "g",
                    timeout_s=900)
    assert gold.status is EvalStatus.SOLVED, gold.detail
    base = run_eval(task, "", sandbox=sandbox, envs=bench.envs, log_dir=tmp_path / "b", timeout_s=900)
    assert base.status is EvalStatus.FAILED, base.detail


ENV_TASK = "tkem__cachetools-7.3.1"
"""The instance whose image puts its package on sys.path through ENV (PYTHONPATH=/testbed/src)."""
ENGINE_ADDED = {"HOSTNAME", "HOME", "container", "TERM", "PWD", "SHLVL", "_"}
"""What the engine, the shell or hgm add besides the image's Env (HOME: a private tmpfs in hgm)."""


def official_exec_env(bench, task) -> dict[str, str]:
    """The environment a command gets under the official harness: a container made by swebench's own
    create_container, then `docker exec` as run_instance does it."""
    import logging

    from swebench.harness.run_evaluation import create_container
    from swebench.harness.utils import make_test_spec

    logger = logging.getLogger("hgm-test-official-env")
    container = create_container(make_test_spec(task.instance), bench.envs.client, f"hgm-env-{os.getpid()}", logger)
    try:
        container.start()
        out = container.exec_run(["env", "-0"], workdir="/testbed").output.decode()
    finally:  # not swebench's cleanup_container: it shells out to a `docker` CLI, which Podman hosts lack
        container.remove(force=True)
    return dict(kv.split("=", 1) for kv in out.split("\0") if kv)


@pytest.mark.parametrize("task_id", [ENV_TASK, TASK])
def test_commands_run_with_the_images_environment_as_under_the_official_harness(bench, sandbox, task_id):
    task = bench.task(task_id)
    official = official_exec_env(bench, task)
    box = bench.envs.sandbox(bench.envs.get(task, backend=sandbox.name), sandbox)
    ran = box.exec(["env", "-0"], cwd="/", timeout=60)
    assert ran.ok, ran
    ours = dict(kv.split("=", 1) for kv in ran.stdout.split("\0") if kv)
    assert {k: v for k, v in ours.items() if k not in ENGINE_ADDED} == \
        {k: v for k, v in official.items() if k not in ENGINE_ADDED}
    assert ours["HOME"] == str(Path.home())
    if task_id == ENV_TASK:
        assert (ours["PYTHONPATH"], ours["VIRTUAL_ENV"]) == ("/testbed/src", "/opt/testbed-env")
        assert ours["PATH"].startswith("/opt/testbed-env/bin:")
