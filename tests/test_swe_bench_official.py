"""hgm's SWE-bench verdicts against the official harness's: for every local instance, the gold patch,
no patch and a wrong patch graded by hgm (docker and bwrap) and by `swebench.harness.run_evaluation`
on the same images must agree: resolved = solved, unresolved = failed, empty patch = empty_patch,
and the same number of FAIL_TO_PASS and PASS_TO_PASS tests passing.
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from swebench_official import run_official, verdicts, write_dataset
from test_swe_bench_scoring import bench, sandbox  # noqa: F401 - fixtures

from hgm.domain import EvalStatus

pytestmark = [pytest.mark.slow, pytest.mark.docker]
OFFICIAL = {EvalStatus.SOLVED: "resolved", EvalStatus.FAILED: "unresolved", EvalStatus.EMPTY_PATCH: "empty_patch",
            EvalStatus.INFRA_ERROR: "error"}
"""hgm's verdict -> the list of the official run report it corresponds to."""
COUNTS = re.compile(r"FAIL_TO_PASS (\d+)/\d+ pass, PASS_TO_PASS (\d+)/\d+ pass")
"""hgm's detail of a graded patch."""


def wrong_patch(bench, task) -> str:  # noqa: F811
    """A patch that applies and fixes nothing: a comment appended to the first file the gold patch edits."""
    path = next(line[6:] for line in task.instance["patch"].splitlines() if line.startswith("+++ b/"))
    old = (bench.envs.get(task, backend="").testbed / path).read_text()
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), (old + "# not a fix\n").splitlines(keepends=True), f"a/{path}", f"b/{path}"
        )
    )


@pytest.fixture(scope="module")
def predictions(bench) -> dict[str, dict[str, str]]:  # noqa: F811
    """model -> instance id -> patch, for every local instance."""
    tasks = bench.tasks("all")
    return {"gold": {t.id: t.instance["patch"] for t in tasks}, "empty": {t.id: "" for t in tasks},
            "wrong": {t.id: wrong_patch(bench, t) for t in tasks}}


@pytest.fixture(scope="module")
def official(bench, predictions, tmp_path_factory) -> dict[str, dict]:  # noqa: F811
    """model -> run_evaluation's run report for that model's predictions."""
    work = tmp_path_factory.mktemp("official")
    dataset = write_dataset([t.instance for t in bench.tasks("all")], work / "dataset.jsonl")
    out = {}
    for model, patches in predictions.items():
        preds = work / f"{model}.jsonl"
        preds.write_text("".join(json.dumps({"instance_id": i, "model_name_or_path": model, "model_patch": p}) + "\n"
                                 for i, p in patches.items()))
        out[model] = run_official(dataset, preds, work, f"hgm-conformance-{model}")
        assert out[model].get("unstopped_containers", []) == [], "the official harness left containers"
    return out


def passing(report: dict, kind: str) -> int:
    return len(report.get("tests_status", {}).get(kind, {}).get("success", []))


def test_verdicts_equal_the_official_harness_on_every_local_instance(bench, sandbox, predictions, official,  # noqa: F811
                                                                      tmp_path):
    def grade(model: str, iid: str, patch: str) -> tuple:
        task = bench.task(iid)
        ws = bench.make_workspace(task, tmp_path / model / iid / "testbed")
        if patch:
            subprocess.run(["git", "apply", "-"], cwd=ws.path, input=patch, text=True, check=True)
        score = bench.score(task, ws, sandbox=sandbox, log_dir=tmp_path / model / iid / "logs", timeout_s=900)
        counts: tuple = ()
        if score.status in (EvalStatus.SOLVED, EvalStatus.FAILED):
            graded = COUNTS.fullmatch(score.detail)  # else hgm did not grade per test: the detail says why
            counts = (int(graded[1]), int(graded[2])) if graded else (score.detail,)
        return OFFICIAL[score.status], counts

    jobs = [(model, iid, patch) for model, patches in predictions.items() for iid, patch in patches.items()]
    with ThreadPoolExecutor(2) as pool:  # as a run's two workers would
        ours = dict(zip([(m, i) for m, i, _ in jobs], pool.map(lambda job: grade(*job), jobs), strict=True))
    theirs: dict[tuple[str, str], tuple] = {}
    for model, iid, _ in jobs:
        report = official[model]["reports"].get(iid)
        theirs[(model, iid)] = (
            verdicts(official[model]).get(iid, "missing"),
            (passing(report, "FAIL_TO_PASS"), passing(report, "PASS_TO_PASS")) if report else (),
        )
    assert ours == theirs
    assert {v for v, _ in ours.values()} == {"resolved", "unresolved", "empty_patch"}  # each kind was graded
    assert len(ours) == 3 * len(bench.tasks("all")) >= 12
