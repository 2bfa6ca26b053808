"""hgm's SWE-bench verdicts against the official harness's: for every local instance, the gold patch,
no patch and a wrong patch graded by hgm (docker and bwrap) and by `swebench.harness.run_evaluation`
on the same images must agree: resolved = solved, unresolved = failed, empty patch = empty_patch,
and the same number of FAIL_TO_PASS and PASS_TO_PASS tests passing.
"""

from __future__ import annotations

import difflib
import json
import subprocess

import pytest
from swebench_official import run_official, verdicts, write_dataset
from test_swe_bench_scoring import bench, sandbox  # noqa: F401 - fixtures

from hgm.domain import EvalStatus

pytestmark = [pytest.mark.slow, pytest.mark.docker]
OFFICIAL = {EvalStatus.SOLVED: "resolved", EvalStatus.FAILED: "unresolved", EvalStatus.EMPTY_PATCH: "empty_patch",
            EvalStatus.INFRA_ERROR: "error"}
"""hgm's verdict -> the list of the official run report it corresponds to."""


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
    ours: dict[tuple[str, str], tuple] = {}
    theirs: dict[tuple[str, str], tuple] = {}
    for model, patches in predictions.items():
        filed = verdicts(official[model])
        for iid, patch in patches.items():
            task = bench.task(iid)
            ws = bench.make_workspace(task, tmp_path / model / iid / "testbed")
            if patch:
                subprocess.run(["git", "apply", "-"], cwd=ws.path, input=patch, text=True, check=True)
            score = bench.score(task, ws, sandbox=sandbox, log_dir=tmp_path / model / iid / "logs", timeout_s=900)
            counts = ()
            if score.status in (EvalStatus.SOLVED, EvalStatus.FAILED):  # "FAIL_TO_PASS a/b pass, PASS_TO_PASS c/d pass"
                f2p, p2p = (int(part.split()[1].split("/")[0]) for part in score.detail.split(", "))
                counts = (f2p, p2p)
            ours[(model, iid)] = (OFFICIAL[score.status], counts)
            report = official[model]["reports"].get(iid)
            theirs[(model, iid)] = (
                filed.get(iid, "missing"),
                (passing(report, "FAIL_TO_PASS"), passing(report, "PASS_TO_PASS")) if report else (),
            )
    assert ours == theirs
    assert {v for v, _ in ours.values()} == {"resolved", "unresolved", "empty_patch"}  # each kind was graded
    assert len(ours) == 3 * len(bench.tasks("all")) >= 12
