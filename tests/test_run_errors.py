"""`hgm run` refuses bad input up front, says what to do, and touches nothing it should not."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from hgm.config import load_config
from hgm.run import prepare
from hgm.store import RunStore
from llm_scripts import write_scripts


def hgm(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**(os.environ if env is None else env), "COLUMNS": "300"}  # no wrapping inside paths
    return subprocess.run([sys.executable, "-m", "hgm.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_readme_command_without_deepseek_key_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEEPSEEK_API_KEY"}
    done = hgm("run", "--polyglot", "--self-improve-llm", "deepseek-chat", "--max-task-evals", "1", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "DEEPSEEK_API_KEY" in done.stderr and "export DEEPSEEK_API_KEY" in done.stderr.replace("\n", " ")
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [], "no run directory is created before the checks pass"


def _args(tmp_path: Path, polyglot: Path, *extra: str) -> list[str]:
    models = write_scripts(tmp_path / "scripts", polyglot)
    return ["run", "--from", str(polyglot), "--downstream-llm", models["downstream"], "--self-improve-llm",
            models["self_improve"], "--diagnose-llm", models["diagnose"], "--max-task-evals", "1", *extra]


def test_unknown_task_subset_and_missing_benchmark(tmp_path: Path, polyglot_path: Path) -> None:
    out = tmp_path / "run"
    done = hgm(*_args(tmp_path, polyglot_path, "--tasks", "python__transpos", "--output-dir", str(out)))
    assert done.returncode == 2 and "unknown Polyglot task 'python__transpos'" in done.stderr
    assert "python__transpose" in done.stderr
    done = hgm(*_args(tmp_path, polyglot_path, "--subset", "huge", "--output-dir", str(out)))
    assert done.returncode == 2 and "unknown Polyglot subset 'huge'" in done.stderr and "small" in done.stderr
    args = _args(tmp_path, polyglot_path, "--output-dir", str(out))
    i = args.index("--from")
    del args[i:i + 2]
    env = {**os.environ, "HGM_CACHE_DIR": str(tmp_path / "empty-cache")}
    done = hgm(*args, env=env)
    assert done.returncode == 2 and "hgm benchmark fetch polyglot" in done.stderr and "--from" in done.stderr
    assert not out.exists()


def test_output_dir_with_another_run_or_other_files_is_refused(tmp_path: Path, polyglot_path: Path) -> None:
    run = tmp_path / "run"
    RunStore.create(run, load_config()).close()
    before = (run / "run.sqlite").read_bytes()
    done = hgm(*_args(tmp_path, polyglot_path, "--output-dir", str(run)))
    assert done.returncode == 2 and "already holds a run" in done.stderr and f"--resume {run}" in done.stderr
    assert (run / "run.sqlite").read_bytes() == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    done = hgm(*_args(tmp_path, polyglot_path, "--output-dir", str(other)))
    assert done.returncode == 2 and "not empty" in done.stderr
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_resume_refuses_corrupt_foreign_or_missing_stores_untouched(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "run.sqlite").write_bytes(b"this is not a database" * 100)
    done = hgm("run", "--resume", str(corrupt))
    assert done.returncode == 2 and "not a readable hgm run store" in done.stderr
    assert (corrupt / "run.sqlite").read_bytes() == b"this is not a database" * 100
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "run.sqlite") as c:
        c.execute("CREATE TABLE t (x)")
    before = (foreign / "run.sqlite").read_bytes()
    done = hgm("run", "--resume", str(foreign))
    assert done.returncode == 2 and "hgm run store" in done.stderr and "Traceback" not in done.stderr
    assert (foreign / "run.sqlite").read_bytes() == before
    done = hgm("run", "--resume", str(tmp_path / "nothing"))
    assert done.returncode == 2 and "no hgm run" in done.stderr
    done = hgm("run", "--resume", str(foreign), "--policy", "dgm")
    assert done.returncode == 2 and "only --workers may change" in done.stderr and "search.policy" in done.stderr


def test_small_subset_loads_the_papers_ten_tasks(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    config = load_config(None, [f"benchmark.path={polyglot_path}", "benchmark.subset=small",
                                f"llm.downstream={models['downstream']}", f"llm.self_improve={models['self_improve']}",
                                f"llm.diagnose={models['diagnose']}"])
    prepared = prepare(config)
    assert len(prepared.tasks) == 10
    assert {"python__dominoes", "python__beer-song", "go__book-store", "rust__bowling"} <= set(prepared.tasks)
    assert {t.split("__")[0] for t in prepared.tasks} == {"python", "go", "cpp", "java", "javascript", "rust"}
