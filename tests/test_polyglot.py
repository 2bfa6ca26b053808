"""Fast tests of the Polyglot loader, subsets, workspaces and the scorer's bookkeeping.

The scorer tests use Python exercises with the `none` sandbox (Debian's python3-pytest): they
run real tests in about a second each. Real toolchains in bwrap: test_polyglot_toolchains.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hgm.benchmarks.polyglot import PolyglotBenchmark, deps, languages, loader
from hgm.benchmarks.polyglot.scoring import score
from hgm.benchmarks.polyglot.validate import FREE_PASSES
from hgm.benchmarks.polyglot.workspace import make_workspace, solution_changes
from hgm.domain import EvalStatus
from hgm.errors import UserError
from hgm.sandbox import get_sandbox

needs_pytest = pytest.mark.skipif(
    not languages.python_toolchain().ok, reason="Debian's python3-pytest missing (scripts/install_toolchains.sh)"
)


@pytest.fixture(scope="module")
def bench(polyglot_path: Path) -> PolyglotBenchmark:
    return PolyglotBenchmark.open(polyglot_path)


def test_loads_all_225_tasks_by_language(bench: PolyglotBenchmark) -> None:
    tasks = bench.tasks("all")
    counts = {lang: sum(t.language == lang for t in tasks) for lang in loader.LANGUAGES}
    assert counts == {"cpp": 26, "go": 39, "java": 47, "javascript": 49, "python": 34, "rust": 30}
    assert all(t.id == f"{t.language}__{t.name}" for t in tasks)
    assert [t.id for t in tasks] == sorted(t.id for t in tasks)


def test_task_files_and_problem_statement(bench: PolyglotBenchmark) -> None:
    task = bench.task("python__beer-song")
    assert task.solution_files == ("beer_song.py",) and task.test_files == ("beer_song_test.py",)
    assert task.example_files == (".meta/example.py",)
    assert task.problem_statement.startswith("# Instructions")
    # instructions.md first, then instructions.append.md
    with_append = next(t for t in bench.tasks() if (t.path / ".docs" / "instructions.append.md").is_file())
    text = with_append.problem_statement
    first = (with_append.path / ".docs" / "instructions.md").read_text().strip()
    append = (with_append.path / ".docs" / "instructions.append.md").read_text().strip()
    assert text.index(first) < text.index(append)


def test_reference_files_map_onto_solution_paths(bench: PolyglotBenchmark) -> None:
    connect = bench.task("java__connect").reference_files()
    assert connect["src/main/java/Connect.java"] == ".meta/src/reference/java/Connect.java"
    assert connect["src/main/java/UnionFind.java"] == ".meta/src/reference/java/UnionFind.java"
    assert bench.task("cpp__meetup").reference_files() == {"meetup.h": ".meta/example.h"}
    java_poker = bench.task("java__poker").reference_files()  # Card.java must not land on Poker.java
    assert java_poker == {
        f"src/main/java/{n}.java": f".meta/src/reference/java/{n}.java" for n in ("Card", "Hand", "Poker")
    }
    poker = bench.task("rust__poker").reference_files()
    assert poker == {"src/lib.rs": ".meta/example.rs", "Cargo.toml": ".meta/Cargo-example.toml"}


def test_subsets_from_the_paper(bench: PolyglotBenchmark) -> None:
    small, medium = bench.tasks("small"), bench.tasks("medium")
    assert len(small) == 10 and len(medium) == 50 and len(bench.tasks("all")) == 225
    assert small[0].id == "go__dominoes"
    assert {"go__markdown", "java__ledger"} <= {t.id for t in medium}
    with pytest.raises(UserError, match="valid subsets: small, medium, all"):
        bench.tasks("tiny")


def test_unknown_task_id_says_how_to_list(bench: PolyglotBenchmark) -> None:
    with pytest.raises(UserError, match="hgm benchmark list") as err:
        bench.task("python__beer-songs")
    assert "python__beer-song" in str(err.value)


def test_missing_tree_names_from_and_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HGM_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="hgm benchmark fetch polyglot.*--from PATH"):
        PolyglotBenchmark.open(None)
    with pytest.raises(UserError, match="--from"):
        PolyglotBenchmark.open(tmp_path / "nowhere")


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_fetch_clones_pinned_commit_and_fails_offline_naming_from(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    _git(upstream, "init", "-q")
    (upstream / "README.md").write_text("one\n")
    _git(upstream, "add", "-A")
    _git(upstream, "commit", "-q", "-m", "one")
    pinned = _git(upstream, "rev-parse", "HEAD")
    (upstream / "README.md").write_text("two\n")
    _git(upstream, "commit", "-q", "-am", "two")
    dest = loader.fetch(tmp_path / "clone", commit=pinned, url=f"file://{upstream}")
    assert _git(dest, "rev-parse", "HEAD") == pinned and (dest / "README.md").read_text() == "one\n"
    with pytest.raises(UserError, match="--from PATH"):
        loader.fetch(tmp_path / "other", url=f"file://{tmp_path}/no-such-repo")
    assert not (tmp_path / "other").exists()


def test_workspace_hides_tests_and_meta(bench: PolyglotBenchmark, tmp_path: Path) -> None:
    task = bench.task("go__alphametics")  # has an editor test file, cases_test.go
    ws = make_workspace(task, tmp_path / "ws")
    files = set(_git(ws.path, "ls-files").splitlines())
    assert "alphametics.go" in files and "go.mod" in files and ".docs/instructions.md" in files
    assert not any(f.endswith("_test.go") or f.startswith(".meta") for f in files)
    assert _git(ws.path, "rev-parse", "HEAD") == ws.base_commit
    assert _git(ws.path, "rev-list", "--count", "HEAD") == "1"
    assert _git(ws.path, "status", "--porcelain") == ""
    java = make_workspace(bench.task("java__hangman"), tmp_path / "java")
    assert not (java.path / "src" / "test").exists() and (java.path / "src/main/java/Part.java").is_file()


def test_only_solution_files_count(bench: PolyglotBenchmark, tmp_path: Path) -> None:
    task = bench.task("java__connect")
    ws = make_workspace(task, tmp_path / "ws")
    (ws.path / "build.gradle").write_text("hacked\n")
    (ws.path / "src/test/java").mkdir(parents=True)
    (ws.path / "src/test/java/Extra.java").write_text("class Extra {}\n")
    assert solution_changes(task, ws.path) == {}
    (ws.path / "src/main/java/Board.java").write_text("class Board {}\n")  # a new helper class counts
    (ws.path / "src/main/java/Connect.java").unlink()
    changes = solution_changes(task, ws.path)
    assert changes == {"src/main/java/Board.java": b"class Board {}\n", "src/main/java/Connect.java": None}


def test_symlinked_solution_is_not_read(bench: PolyglotBenchmark, tmp_path: Path) -> None:
    task = bench.task("python__beer-song")
    ws = make_workspace(task, tmp_path / "ws")
    (ws.path / "beer_song.py").unlink()
    (ws.path / "beer_song.py").symlink_to("/etc/passwd")
    assert solution_changes(task, ws.path) == {"beer_song.py": None}


@pytest.fixture
def none_sandbox():
    return get_sandbox("none")


def _solve(task, ws: Path) -> None:
    for target, example in task.reference_files().items():
        (ws / target).write_bytes((task.path / example).read_bytes())


@needs_pytest
def test_score_reference_solved_and_patch_kept(bench: PolyglotBenchmark, tmp_path: Path, none_sandbox) -> None:
    task = bench.task("python__beer-song")
    ws = make_workspace(task, tmp_path / "ws")
    _solve(task, ws.path)
    result = score(task, ws, sandbox=none_sandbox, log_dir=tmp_path / "log", timeout_s=120)
    assert result.status is EvalStatus.SOLVED, result.detail
    assert result.patch.startswith("diff --git a/beer_song.py b/beer_song.py")
    assert (tmp_path / "log" / "patch.diff").read_text() == result.patch
    assert "8 passed" in result.output_path.read_text() and result.test_s > 0


@needs_pytest
def test_untouched_workspace_is_empty_patch(bench: PolyglotBenchmark, tmp_path: Path, none_sandbox) -> None:
    task = bench.task("python__beer-song")
    ws = make_workspace(task, tmp_path / "ws")
    (ws.path / "notes.txt").write_text("not a solution file\n")
    result = score(task, ws, sandbox=none_sandbox, log_dir=tmp_path / "log", timeout_s=120)
    assert result.status is EvalStatus.EMPTY_PATCH and result.output_path is None and result.patch == ""


@needs_pytest
def test_tests_restored_when_agent_deletes_or_games_them(
    bench: PolyglotBenchmark, tmp_path: Path, none_sandbox
) -> None:
    task = bench.task("python__beer-song")
    ws = make_workspace(task, tmp_path / "ws")
    (ws.path / "beer_song.py").write_text("def recite(start, take=1):\n    return []\n")
    (ws.path / "beer_song_test.py").write_text("def test_ok():\n    assert True\n")
    (ws.path / "conftest.py").write_text(  # would turn every failure into a pass if it were used
        "import pytest\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    out = yield\n    out.get_result().outcome = 'passed'\n")
    result = score(task, ws, sandbox=none_sandbox, log_dir=tmp_path / "log", timeout_s=120)
    assert result.status is EvalStatus.FAILED and "failed" in result.detail
    assert "test_all_verses" in result.output_path.read_text()


def test_missing_toolchain_is_infra_error(bench: PolyglotBenchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          none_sandbox) -> None:
    task = bench.task("go__book-store")
    ws = make_workspace(task, tmp_path / "ws")
    _solve(task, ws.path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    languages.go_toolchain.cache_clear()
    try:
        result = score(task, ws, sandbox=none_sandbox, log_dir=tmp_path / "log", timeout_s=60)
    finally:
        monkeypatch.undo()
        languages.go_toolchain.cache_clear()
    assert result.status is EvalStatus.INFRA_ERROR and result.infra_error
    assert result.error_type == "ToolchainMissing" and "install Go" in result.detail


def test_unprepared_deps_is_infra_error_naming_the_fix(bench: PolyglotBenchmark, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, none_sandbox) -> None:
    monkeypatch.setenv("HGM_CACHE_DIR", str(tmp_path / "empty-cache"))
    task = bench.task("javascript__bottle-song")
    ws = make_workspace(task, tmp_path / "ws")
    _solve(task, ws.path)
    result = score(task, ws, sandbox=none_sandbox, log_dir=tmp_path / "log", timeout_s=60)
    if not languages.node_toolchain().ok:
        assert result.error_type == "ToolchainMissing"
    else:
        assert (
            result.error_type == "DepsMissing" and "hgm benchmark prepare polyglot --lang javascript" in result.detail
        )
    assert not deps.is_ready("javascript") and deps.is_ready("python")


def test_deps_an_older_hgm_prepared_are_not_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Java's runner jar, Go's and C++'s caches hold hgm's reporter: prepared by an older hgm (a
    one-line stamp, or other reporter files) they would leave every test unreported."""
    monkeypatch.setenv("HGM_CACHE_DIR", str(tmp_path))
    for language in ("java", "javascript"):
        (tmp_path / "polyglot-deps" / language).mkdir(parents=True)
        (tmp_path / "polyglot-deps" / language / "READY").write_text("0123456789abcdef\n")
    assert not deps.is_ready("java") and deps.is_ready("javascript")  # javascript's deps hold no hgm file
    (tmp_path / "polyglot-deps/java/READY").write_text(f"0123456789abcdef\n{deps._inputs_key('java')}\n")
    assert deps.is_ready("java")


def test_free_passes_are_the_known_refactorings() -> None:
    assert {"go__ledger", "go__markdown", "java__ledger", "java__tree-building", "javascript__ledger"} == FREE_PASSES
    assert "go__counter" not in FREE_PASSES
