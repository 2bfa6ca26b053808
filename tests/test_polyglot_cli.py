"""`hgm benchmark list|validate` and `hgm doctor` as a user runs them (subprocesses)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hgm.benchmarks.polyglot import deps, languages


def hgm(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "COLUMNS": "200", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "hgm.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_list_shows_subsets(polyglot_path: Path) -> None:
    done = hgm("benchmark", "list", "polyglot", "--from", str(polyglot_path))
    assert done.returncode == 0, done.stderr
    assert "small" in done.stdout and "medium" in done.stdout and "225" in done.stdout
    assert "cpp 26, go 39, java 47, javascript 49, python 34, rust 30" in done.stdout


def test_fetch_from_a_local_tree_makes_it_the_default(polyglot_path: Path, tmp_path: Path) -> None:
    """Offline set-up: `fetch --from` copies a local tree into the cache; later commands need no --from."""
    cache = {"HGM_CACHE_DIR": str(tmp_path / "cache")}
    done = hgm("benchmark", "list", "polyglot", env_extra=cache)
    assert done.returncode == 2 and "hgm benchmark fetch polyglot" in done.stderr, done.stderr
    for _ in range(2):  # the second fetch replaces the first copy
        done = hgm("benchmark", "fetch", "polyglot", "--from", str(polyglot_path), env_extra=cache)
        assert done.returncode == 0, done.stderr
    copy = tmp_path / "cache" / "benchmarks" / "polyglot"
    assert "commands use it without --from" in done.stdout and str(copy) in done.stdout.replace("\n", "")
    done = hgm("benchmark", "list", "polyglot", env_extra=cache)
    assert done.returncode == 0, done.stderr
    assert "cpp 26, go 39, java 47, javascript 49, python 34, rust 30" in done.stdout
    assert all(p.stat().st_mode & 0o200 for p in [copy, *copy.rglob("*")] if p.is_dir()), "copy deletable"
    executables = [
        p.relative_to(polyglot_path) for p in polyglot_path.rglob("*") if p.is_file() and p.stat().st_mode & 0o100
    ]
    assert all((copy / p).stat().st_mode & 0o100 for p in executables)
    done = hgm("benchmark", "fetch", "polyglot", "--from", str(tmp_path / "nowhere"), env_extra=cache)
    assert done.returncode == 2 and "no Polyglot benchmark tree" in done.stderr and copy.is_dir()
    done = hgm("benchmark", "fetch", "swe-bench", "--from", str(polyglot_path), env_extra=cache)
    assert done.returncode == 2 and "--dataset" in done.stderr


def test_unknown_subset_and_task_are_user_errors(polyglot_path: Path) -> None:
    done = hgm("benchmark", "validate", "polyglot", "--from", str(polyglot_path), "--subset", "huge")
    assert done.returncode == 2 and "valid subsets: small, medium, all" in done.stderr
    done = hgm("benchmark", "validate", "polyglot", "--from", str(polyglot_path), "--tasks", "go__nope")
    assert done.returncode == 2 and "unknown Polyglot task 'go__nope'" in done.stderr
    assert "Traceback" not in done.stderr


def test_doctor_reports_every_language() -> None:
    done = hgm("doctor")
    assert done.returncode in (0, 1), done.stderr
    for lang in ("cpp", "go", "java", "javascript", "python", "rust"):
        assert f"polyglot {lang} toolchain" in done.stdout
    assert "sandbox bwrap" in done.stdout


@pytest.mark.slow
def test_validate_names_unexpected_results(polyglot_path: Path, tmp_path: Path) -> None:
    """A tree whose python__beer-song reference is broken: validation exits 1 and names it;
    go__counter (no tests) is reported as known unsolvable, go__ledger as a free pass."""
    if not (languages.python_toolchain().ok and languages.go_toolchain().ok and deps.is_ready("go")):
        pytest.skip("python3-pytest / Go toolchain and deps not set up (scripts/install_toolchains.sh)")
    tree = tmp_path / "tree"
    for lang in ("cpp", "go", "java", "javascript", "python", "rust"):
        (tree / lang / "exercises" / "practice").mkdir(parents=True)
    for task in (
        "python/exercises/practice/beer-song",
        "go/exercises/practice/counter",
        "go/exercises/practice/ledger",
    ):
        shutil.copytree(polyglot_path / task, tree / task)
    example = tree / "python/exercises/practice/beer-song/.meta/example.py"
    example.chmod(0o644)
    example.write_text("def recite(start, take=1):\n    return ['wrong']\n")
    done = hgm("benchmark", "validate", "polyglot", "--from", str(tree), "--sandbox", "bwrap", "--workers", "2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "python__beer-song reference: reference not solved" in done.stdout
    assert "known unsolvable: go__counter" in done.stdout
    assert "expected free passes (refactoring stubs that already pass): go__ledger" in done.stdout
