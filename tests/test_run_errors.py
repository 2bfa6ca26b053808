"""`hgm run` refuses bad input up front, says what to do, and touches nothing it should not."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from hgm.config import HGMConfig, load_config
from hgm.errors import UserError
from hgm.run import new_run, prepare, resume_run
from hgm.store import RunStore

from llm_scripts import write_scripts

QUIET = Console(file=io.StringIO())


def hgm(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**(os.environ if env is None else env), "COLUMNS": "300"}  # no wrapping inside paths
    return subprocess.run([sys.executable, "-m", "hgm.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_readme_command_without_deepseek_key_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEEPSEEK_API_KEY"}
    done = hgm(
        "run", "--polyglot", "--self-improve-llm", "deepseek-chat", "--max-task-evals", "1", env=env, cwd=tmp_path
    )
    assert done.returncode == 2
    assert "DEEPSEEK_API_KEY" in done.stderr and "export DEEPSEEK_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [], "no run directory is created before the checks pass"


def _config(tmp_path: Path, polyglot: Path | None, *overrides: str) -> HGMConfig:
    models = write_scripts(tmp_path / "scripts", Path(__file__).resolve().parents[2] / "shared" / "polyglot-benchmark")
    return load_config(None, [*([f"benchmark.path={polyglot}"] if polyglot else []),
                              f"llm.downstream={models['downstream']}", f"llm.self_improve={models['self_improve']}",
                              f"llm.diagnose={models['diagnose']}", "search.max_task_evals=1", *overrides])


def test_unknown_task_subset_and_missing_benchmark(tmp_path: Path, polyglot_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"
    with pytest.raises(UserError, match="unknown Polyglot task 'python__transpos'.*python__transpose"):
        new_run(out, _config(tmp_path, polyglot_path, "benchmark.task_ids=[python__transpos]"), QUIET)
    with pytest.raises(UserError, match="unknown Polyglot subset 'huge'.*small"):
        new_run(out, _config(tmp_path, polyglot_path, "benchmark.subset=huge"), QUIET)
    monkeypatch.setenv("HGM_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(UserError, match="hgm benchmark fetch polyglot.*--from"):
        new_run(out, _config(tmp_path, None), QUIET)
    assert not out.exists()


def test_output_dir_with_another_run_or_other_files_is_refused(tmp_path: Path, polyglot_path: Path) -> None:
    run = tmp_path / "run"
    RunStore.create(run, load_config()).close()
    before = (run / "run.sqlite").read_bytes()
    with pytest.raises(UserError, match=f"already holds a run.*--resume {run}"):
        new_run(run, _config(tmp_path, polyglot_path), QUIET)
    assert (run / "run.sqlite").read_bytes() == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        new_run(other, _config(tmp_path, polyglot_path), QUIET)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_resume_refuses_corrupt_foreign_or_missing_stores_untouched(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "run.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="not a readable hgm run store"):
        resume_run(corrupt, QUIET)
    assert (corrupt / "run.sqlite").read_bytes() == b"this is not a database" * 100
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "run.sqlite") as c:
        c.execute("CREATE TABLE t (x)")
    before = (foreign / "run.sqlite").read_bytes()
    with pytest.raises(UserError, match="not a.* hgm run store"):
        resume_run(foreign, QUIET)
    assert (foreign / "run.sqlite").read_bytes() == before
    with pytest.raises(UserError, match="no hgm run"):
        resume_run(tmp_path / "nothing", QUIET)
    done = hgm("run", "--resume", str(foreign), "--policy", "dgm")
    assert done.returncode == 2 and "only --workers, --executor and --ray-address may change" in done.stderr
    assert "search.policy" in done.stderr


def test_small_subset_loads_the_papers_ten_tasks(tmp_path: Path, polyglot_path: Path) -> None:
    prepared = prepare(_config(tmp_path, polyglot_path, "benchmark.subset=small"))
    assert len(prepared.tasks) == 10
    assert {"python__dominoes", "python__beer-song", "go__book-store", "rust__bowling"} <= set(prepared.tasks)
    assert {t.split("__")[0] for t in prepared.tasks} == {"python", "go", "cpp", "java", "javascript", "rust"}


def test_export_and_show_tree_name_what_is_missing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hgm.archive import init_archive
    from hgm.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["export", str(tmp_path), "1", str(tmp_path / "out")])
    assert isinstance(result.exception, UserError) and "no agent archive" in str(result.exception)
    run = tmp_path / "run"
    RunStore.create(run, load_config()).close()
    _, sha = init_archive(run / "archive", Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial")
    result = runner.invoke(app, ["export", str(run), "7", str(tmp_path / "out")])
    assert isinstance(result.exception, UserError) and "no node 7 (branch node-7)" in str(result.exception)
    result = runner.invoke(app, ["export", str(run), sha[:10], str(tmp_path / "out")])
    assert result.exit_code == 0 and (tmp_path / "out" / "coding_agent.py").is_file()
    result = runner.invoke(app, ["show-tree", str(run), "--format", "yaml"])
    assert isinstance(result.exception, UserError) and "rich, text, json or dot" in str(result.exception)
    result = runner.invoke(app, ["show-tree", str(tmp_path / "none")])
    assert isinstance(result.exception, UserError) and "no hgm run" in str(result.exception)
