"""SWE-bench instances and workspaces without an engine: the local task repo in the official schema,
the Hub's column layout read through `datasets`, subsets, image names, the agent's repository
(one commit, no history) and the patch read back out of it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hgm.benchmarks.swe_bench.dataset import HUB_NAMES, REQUIRED, load_instances, subset_ids
from hgm.benchmarks.swe_bench.environment import Environment
from hgm.benchmarks.swe_bench.workspace import agent_patch, drop_test_changes, make_workspace
from hgm.errors import UserError

LOCAL = Path(__file__).parent / "data" / "swe_bench"
IDS = ["r1chardj0n3s__parse-1.22.3", "r1chardj0n3s__parse-1.22.4", "tkem__cachetools-7.3.1", "tkem__cachetools-7.3.3"]


@pytest.fixture(scope="module")
def local():
    return {t.id: t for t in load_instances(str(LOCAL))}


def test_local_instances_are_in_the_official_schema_and_make_test_specs(local):
    from swebench.harness.utils import make_test_spec

    assert sorted(local) == IDS
    for task in local.values():
        row = task.instance
        assert set(REQUIRED) <= set(row) and row["environment_setup_commit"] == row["base_commit"]
        assert len(row["base_commit"]) == 40 and row["FAIL_TO_PASS"] and row["PASS_TO_PASS"]
        assert not set(row["FAIL_TO_PASS"]) & set(row["PASS_TO_PASS"])
        spec = make_test_spec(row)
        assert ">>>>> Test Exit Code" in spec.eval_script  # make_test_spec inserted the exit-code capture
        assert task.test_files and all(f.startswith("tests/") for f in task.test_files)
        assert task.build_context is not None and (task.build_context / "Dockerfile").is_file()
        assert row["base_commit"] in (task.build_context / "Dockerfile").read_text()  # the build checks it


def hub_rows(local) -> list[dict]:
    """The local instances as the Hub's parquet carries them: test lists as JSON strings."""
    keep = [*REQUIRED, "environment_setup_commit", "created_at", "hints_text"]
    return [{k: json.dumps(t.instance[k]) if k in ("FAIL_TO_PASS", "PASS_TO_PASS") else str(t.instance.get(k, ""))
             for k in keep} for t in local.values()]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_a_file_in_the_hub_column_layout_loads_through_datasets(tmp_path, local, suffix):
    import datasets

    rows = hub_rows(local)
    path = tmp_path / f"swe-bench-test{suffix}"
    table = datasets.Dataset.from_list(rows)
    table.to_parquet(str(path)) if suffix == ".parquet" else table.to_json(str(path), lines=True)
    loaded = {t.id: t for t in load_instances(str(path))}
    assert sorted(loaded) == IDS
    for iid, task in loaded.items():
        assert task.instance["patch"] == local[iid].instance["patch"]
        assert json.loads(task.instance["FAIL_TO_PASS"]) == local[iid].instance["FAIL_TO_PASS"]
        assert task.image == local[iid].image and task.build_context is None  # a file: images are pulled


def test_a_hub_name_loads_the_hubs_file_layout_through_datasets(tmp_path, local, monkeypatch):
    """`verified` is SWE-bench/SWE-bench_Verified; `datasets` resolves that id to a local directory of
    the same name before asking the Hub, so the Hub's own layout (data/test-*.parquet) is read offline."""
    import datasets

    data = tmp_path / "SWE-bench" / "SWE-bench_Verified" / "data"
    data.mkdir(parents=True)
    datasets.Dataset.from_list(hub_rows(local)).to_parquet(str(data / "test-00000-of-00001.parquet"))
    monkeypatch.chdir(tmp_path)
    assert sorted(t.id for t in load_instances("verified")) == IDS
    with pytest.raises(UserError, match="could not load the SWE-bench dataset 'verified' \\(split train\\)"):
        load_instances("verified", split="train")


def test_the_image_of_a_real_instance_is_the_one_swebench_computes(tmp_path, local):
    import datasets
    from swebench.task.checks import expected_image

    iid = "django__django-11099"
    row = {**hub_rows(local)[0], "instance_id": iid, "repo": "django/django",
           "image": "swebench/sweb.eval.x86_64.django_1776_django-11099:latest"}  # as SWE-bench_Verified has it
    path = tmp_path / "verified.parquet"
    datasets.Dataset.from_list([row]).to_parquet(str(path))
    [task] = load_instances(str(path))
    assert task.image == expected_image(iid)
    assert all(t.image == expected_image(t.id, namespace="localhost/hgm") for t in local.values())


def test_hub_names_and_errors_say_what_to_do(tmp_path):
    assert HUB_NAMES["verified"] == "SWE-bench/SWE-bench_Verified" and HUB_NAMES["lite"] == "SWE-bench/SWE-bench_Lite"
    with pytest.raises(UserError, match="not found"):
        load_instances(str(tmp_path / "missing.parquet"))
    (tmp_path / "old.jsonl").write_text(json.dumps({"instance_id": "a__b-1", "repo": "a/b"}) + "\n")
    with pytest.raises(UserError, match="princeton-nlp"):
        load_instances(str(tmp_path / "old.jsonl"))


def test_subsets_are_the_papers_and_any_id_file(tmp_path):
    ten, fifty, sixty = subset_ids("verified-10"), subset_ids("verified-50"), subset_ids("verified-60")
    assert (len(ten), len(fifty), len(sixty), len(subset_ids("verified-140"))) == (10, 50, 60, 140)
    assert sixty == ten + fifty and len(set(sixty)) == 60
    assert subset_ids("small") == ten and subset_ids("all") is None
    (tmp_path / "ids.txt").write_text("# mine\nr1chardj0n3s__parse-1.22.3\n\ntkem__cachetools-7.3.3\n")
    assert subset_ids(str(tmp_path / "ids.txt")) == ["r1chardj0n3s__parse-1.22.3", "tkem__cachetools-7.3.3"]
    with pytest.raises(UserError, match="verified-60"):
        subset_ids("verified-61")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def env(tmp_path) -> Environment:
    """A pristine testbed as an image has it: history, a force-tracked ignored file, a build product."""
    testbed = tmp_path / "image" / "testbed"
    (testbed / "pkg").mkdir(parents=True)
    (testbed / "tests").mkdir()
    (testbed / "pkg" / "core.py").write_text("def answer():\n    return 41\n")
    (testbed / "tests" / "test_core.py").write_text("from pkg.core import answer\n")
    (testbed / ".gitignore").write_text("*.so\nbuild/\n")
    (testbed / "vendored.so").write_text("tracked although ignored\n")
    git(testbed, "init", "-q", "-b", "main")
    git(testbed, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "--allow-empty", "-m", "old history")
    git(testbed, "add", "-A")
    git(testbed, "add", "-f", "vendored.so")
    git(testbed, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-m", "the base commit")
    git(testbed, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "--allow-empty", "-m", "FUTURE FIX")
    git(testbed, "reset", "-q", "--soft", "HEAD~1")  # the future commit stays in the object store
    (testbed / "build").mkdir()
    (testbed / "build" / "ext.so").write_text("built in the image\n")
    tracked = tuple(git(testbed, "ls-files", "-z").split("\0")[:-1])
    return Environment("localhost/hgm/x:latest", "sha256:0", testbed, tracked, "/usr/bin", {"PATH": "/usr/bin"})


def test_the_agents_repository_is_one_commit_with_the_base_state(env, tmp_path):
    ws = make_workspace("a__b-1", env, tmp_path / "ws")
    log = git(ws.path, "log", "--all", "--format=%H %s").splitlines()
    assert log == [f"{ws.base_commit} a__b-1: the repository at base_commit (x:latest)"]
    assert "FUTURE FIX" not in git(ws.path, "log", "--all", "--reflog", "--format=%s")
    assert git(ws.path, "status", "--porcelain") == ""
    assert (ws.path / "build" / "ext.so").is_file() and "vendored.so" in git(ws.path, "ls-files")


def test_the_patch_has_new_files_and_ignores_the_agents_git_config(env, tmp_path):
    ws = make_workspace("a__b-1", env, tmp_path / "ws")
    (ws.path / "pkg" / "core.py").write_text("def answer():\n    return 42\n")
    (ws.path / "pkg" / "new.py").write_text("NEW = 1\n")
    (ws.path / "vendored.so").write_text("changed\n")
    (ws.path / "tests" / "test_core.py").write_text("assert True\n")
    (ws.path / "build" / "ext.so").write_text("rebuilt: ignored\n")
    marker = tmp_path / "pwned"
    git(ws.path, "config", "core.fsmonitor", f"touch {marker}; false")  # what a hostile agent could plant
    patch = agent_patch(ws.path)
    assert not marker.exists()
    assert "+    return 42" in patch and "b/pkg/new.py" in patch and "b/vendored.so" in patch
    assert "ext.so" not in patch
    kept, dropped = drop_test_changes(patch, ["tests/test_core.py"])
    assert dropped == ["tests/test_core.py"] and "test_core" not in kept and "b/pkg/new.py" in kept


def test_changes_the_agent_committed_still_count(env, tmp_path):
    ws = make_workspace("a__b-1", env, tmp_path / "ws")
    (ws.path / "pkg" / "core.py").write_text("def answer():\n    return 42\n")
    git(ws.path, "-c", "user.name=a", "-c", "user.email=a@x", "commit", "-qam", "the agent committed")
    assert "+    return 42" in agent_patch(ws.path)


def test_a_mistyped_subset_fails_before_any_dataset_is_loaded():
    """The default dataset is the Hub's: a typo must be named at once, not after the Hub's retries."""
    import os
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "0"}
    for argv in (["benchmark", "fetch", "swe-bench", "--subset", "verified-61"],
                 ["benchmark", "validate", "swe-bench", "--subset", "verified-61"],
                 ["run", "--swe-bench", "--subset", "verified-61", "--self-improve-llm", "scripted:x.json",
                  "--downstream-llm", "scripted:x.json", "--diagnose-llm", "scripted:x.json"]):
        done = subprocess.run([sys.executable, "-m", "hgm.cli", *argv], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 2, (argv, done.stderr)
        assert "unknown SWE-bench subset 'verified-61'" in done.stderr and "verified-60" in done.stderr, done.stderr
        assert "huggingface" not in done.stderr.lower(), done.stderr


def test_exports_share_the_files_they_have_in_common(tmp_path):
    """Root filesystems of images on the same base layers keep one copy of each identical file;
    anything that differs in content or metadata stays a file of its own."""
    import os
    import shutil

    from hgm.benchmarks.swe_bench.environment import share_identical_files

    first = tmp_path / "first"
    (first / "usr" / "lib").mkdir(parents=True)
    files = {"usr/lib/libbig.so": b"x" * 100_000, "usr/lib/same-size.txt": b"aaaa", "usr/lib/touched.txt": b"bbbb",
             "usr/lib/copied.txt": b"c", "empty": b""}
    for rel, data in files.items():
        (first / rel).write_bytes(data)
        os.utime(first / rel, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    second = tmp_path / "second"
    shutil.copytree(first, second, copy_function=shutil.copy2)  # the same layer in another image
    (second / "usr/lib/same-size.txt").write_bytes(b"AAAA")  # same size and mtime, other content
    os.utime(second / "usr/lib/same-size.txt", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    os.utime(second / "usr/lib/touched.txt")  # same content, other mtime
    (second / "usr/lib/only-second.txt").write_bytes(b"d")
    (second / "link").symlink_to("usr/lib/libbig.so")

    saved = share_identical_files(second, [first, second])

    def same(rel: str) -> bool:
        return (first / rel).stat().st_ino == (second / rel).stat().st_ino

    assert same("usr/lib/libbig.so") and same("usr/lib/copied.txt") and saved == 100_000 + 1
    assert not same("usr/lib/same-size.txt") and not same("usr/lib/touched.txt") and not same("empty")
    assert (second / "usr/lib/same-size.txt").read_bytes() == b"AAAA" and (second / "link").is_symlink()
    assert sorted(p.name for p in second.rglob("*")) == sorted(
        ["usr", "lib", "libbig.so", "same-size.txt", "touched.txt", "copied.txt", "only-second.txt", "empty", "link"])
    assert share_identical_files(second, [first]) == 0, "a second pass finds them linked already"



def _list(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "hgm.cli", "benchmark", "list", "swe-bench", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}, "COLUMNS": "250", **env},
    )
    return done, time.monotonic() - start


def test_benchmark_list_swe_bench_works_offline_and_adds_counts_when_the_dataset_is_readable(local):
    with socket.socket() as s:  # a Hub that cannot be reached, on any machine: a closed loopback port
        s.bind(("127.0.0.1", 0))
        hub = f"http://127.0.0.1:{s.getsockname()[1]}"
    offline, seconds = _list(env={"HF_ENDPOINT": hub})
    assert offline.returncode == 0, offline.stderr
    assert seconds < 20, f"{seconds:.1f} s: no long Hub retries"
    out = offline.stdout
    for name in ("verified-10", "verified-50", "verified-60", "verified-140"):
        ids = subset_ids(name)
        row = next(line for line in out.splitlines() if line.startswith("│") and f" {name} " in line)
        assert f" {len(ids)} " in row
        assert f"{name}: {' '.join(ids)}" in " ".join(out.split())
    flat = " ".join(out.split())
    assert "in dataset" not in out and "no dataset counts: the Hub (127.0.0.1) cannot be reached" in flat
    assert "connection refused" in flat

    listed, _ = _list("--dataset", str(LOCAL), env={"HF_ENDPOINT": hub})
    assert listed.returncode == 0, listed.stderr
    flat = " ".join(listed.stdout.split())
    assert "in dataset" in flat and f": {len(local)} instances" in flat and "no dataset counts" not in flat
    row = next(line for line in listed.stdout.splitlines() if " all " in line)
    assert [c.strip() for c in row.split("│")[1:4]] == ["all", str(len(local)), str(len(local))]
