"""`hgm solve`: an agent from a run's archive (RUN:final) on a small local git repository, with the
scripted LLM, the real gateway and a bwrap sandbox; the user's repository is untouched without
--apply."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hgm.archive import init_archive
from hgm.config import load_config
from hgm.domain import MetaKey
from hgm.store import RunStore

INITIAL_AGENT = Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial"
STATEMENT = "add(2, 3) returns -1; it must return 5."
FIX = {"responses": [
    {"content": "The bug is in add.", "tool_calls": [{"name": "editor", "arguments": {
        "command": "str_replace", "path": "calc.py", "old_str": "return a - b", "new_str": "return a + b"}}],
     "usage": {"prompt_tokens": 400, "completion_tokens": 40}},
    {"content": "Fixed: add now adds.", "usage": {"prompt_tokens": 500, "completion_tokens": 10}},
], "price": {"input": 1.0, "output": 2.0}}
EXPECTED_PATCH = """diff --git a/calc.py b/calc.py
index 12ee743..4693ad3 100644
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""


def hgm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hgm.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={**os.environ, "COLUMNS": "300"})


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    (repo / "notes.txt").write_text("uncommitted, untracked: never shown to the agent, never touched\n")
    return repo


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run as `hgm run` leaves it: store, archive with the seed agent and a rewritten child named final."""
    run = tmp_path / "run"
    store = RunStore.create(run, load_config(None, ["sandbox.agent_timeout_s=240"]))
    archive, root_sha = init_archive(run / "archive", INITIAL_AGENT)
    child_src = tmp_path / "child-src"
    shutil.copytree(INITIAL_AGENT, child_src, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    with (child_src / "prompts.py").open("a") as f:
        f.write("\n# lesson: read the failing test first\n")
    child_sha = archive.commit_dir(child_src, "Read the failing test first", parent=root_sha)
    root = store.add_node(None, root_sha, "initial agent")
    child = store.add_node(root, child_sha, "Read the failing test first")
    archive.set_node(root, root_sha)
    archive.set_node(child, child_sha)
    store.set_meta(MetaKey.FINAL_AGENT, str(child))
    store.close()
    return run


def test_solve_run_final_writes_the_patch_and_leaves_the_repo_alone(tmp_path: Path, repo: Path, run: Path) -> None:
    script = tmp_path / "fix.json"
    script.write_text(json.dumps(FIX))
    before = (git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain"), (repo / "calc.py").read_text())
    out = tmp_path / "out"
    done = hgm("solve", f"{run}:final", "--repo", str(repo), "--statement", STATEMENT, "--llm", f"scripted:{script}",
               "--sandbox", "bwrap", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "patch.diff").read_text() == EXPECTED_PATCH
    assert (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "status", "--porcelain"),
        (repo / "calc.py").read_text(),
    ) == before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent"].startswith(f"node 2 of {run}") and summary["applied"] is False
    assert (summary["prompt_tokens"], summary["completion_tokens"]) == (900, 50)
    assert summary["cost_usd"] == pytest.approx((900 * 1.0 + 50 * 2.0) / 1e6)
    assert "cost: $0.0010" in done.stdout and "not applied" in done.stdout
    assert "return a + b" in (out / "agent" / "chat.md").read_text()
    calls = [json.loads(line) for line in (out / "llm_calls.jsonl").read_text().splitlines()]
    assert [c["role"] for c in calls] == ["solve", "solve"] and "OPENAI_API_KEY" not in json.dumps(calls)
    statement = (out / "agent" / "statement.md").read_text()
    assert statement == STATEMENT

    issue = tmp_path / "issue.md"
    issue.write_text(STATEMENT)
    done = hgm("solve", f"{run}:1", "--repo", str(repo), "--issue", str(issue), "--llm", f"scripted:{script}",
               "--sandbox", "bwrap", "--output", str(tmp_path / "out2"), "--apply")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out2" / "summary.json").read_text())["agent"].startswith(f"node 1 of {run}")
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n", "--apply changed the working tree"
    assert git(repo, "rev-parse", "HEAD") == before[0], "no commit is made for the user"
    assert (repo / "notes.txt").is_file()


def test_an_agent_that_changes_nothing_exits_1_and_says_where_to_look(tmp_path: Path, repo: Path) -> None:
    script = tmp_path / "noop.json"
    script.write_text(json.dumps([{"content": "I will not change anything."}]))
    done = hgm("solve", "initial", "--repo", str(repo), "--statement", STATEMENT, "--llm", f"scripted:{script}",
               "--sandbox", "bwrap", "--output", str(tmp_path / "out"))
    assert done.returncode == 1, done.stderr
    assert "changed nothing" in done.stdout and (tmp_path / "out" / "patch.diff").read_text() == ""


def test_solve_errors_read_like_help(tmp_path: Path, repo: Path, run: Path) -> None:
    script = tmp_path / "fix.json"
    script.write_text(json.dumps(FIX))
    llm = ["--llm", f"scripted:{script}"]
    cases = [
        (["initial", "--repo", str(repo)], "exactly one of --issue FILE or --statement TEXT"),
        (["initial", "--repo", str(repo), "--statement", "x", "--issue", str(tmp_path)], "exactly one of"),
        (["initial", "--repo", str(tmp_path / "missing"), "--statement", "x", *llm], "not a directory"),
        (["initial", "--repo", str(tmp_path), "--statement", "x", *llm], "not a git repository"),
        (["initial", "--repo", str(repo), "--statement", "x", "--rev", "nope", *llm], "no commit 'nope'"),
        ([str(tmp_path / "nowhere"), "--repo", str(repo), "--statement", "x", *llm], "`initial`"),
        ([f"{tmp_path}:final", "--repo", str(repo), "--statement", "x", *llm], "not an hgm run directory"),
        ([f"{run}:9", "--repo", str(repo), "--statement", "x", *llm], "no node 9"),
    ]
    for args, expected in cases:
        done = hgm("solve", *args, "--output", str(tmp_path / "never"))
        assert done.returncode == 2 and expected in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "never").exists(), "nothing is written before the checks pass"


def test_run_final_before_the_run_named_one(tmp_path: Path, repo: Path) -> None:
    run = tmp_path / "run"
    RunStore.create(run, load_config()).close()
    done = hgm("solve", f"{run}:final", "--repo", str(repo), "--statement", "x", "--llm", "scripted:/x.json")
    assert done.returncode == 2 and "has not named a final agent yet" in done.stderr and f"{run}:NODE" in done.stderr


def test_a_commit_without_files_is_a_repository_the_agent_starts_from_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "base")
    script = tmp_path / "create.json"
    script.write_text(json.dumps([
        {"content": "Creating it.", "tool_calls": [{"name": "editor", "arguments": {
            "command": "create", "path": "hello.py", "file_text": "print('hello')\n"}}]},
        {"content": "Done."},
    ]))
    out = tmp_path / "out"
    done = hgm("solve", "initial", "--repo", str(repo), "--statement", "Write hello.py printing hello.",
               "--llm", f"scripted:{script}", "--sandbox", "bwrap", "--output", str(out))
    assert done.returncode == 0, done.stderr
    patch = (out / "patch.diff").read_text()
    assert "new file mode" in patch and "+print('hello')" in patch, patch
