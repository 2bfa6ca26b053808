"""The agent's /testbed, and the patch read back out of it.

Workspace: a copy of the image's pristine /testbed without its .git, made a fresh git repository
with ONE commit (fixed author and date) of that state: the agent sees the code at base_commit and
no history at all, so no later commit can leak the fix. Files the original repository tracks stay
tracked even where a .gitignore matches them; build products it ignores stay untracked.

Patch: the working tree against that commit, new files included, computed with a harness-owned
copy of the repository (`<workspace>.hgm-git` beside it), never with the .git the agent could
rewrite (its config could make the host's git run commands). Changes to test files are then
dropped: the tests the instance grades with come from its test_patch, never from the agent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from hgm.benchmarks import TaskWorkspace
from hgm.benchmarks.swe_bench.environment import Environment

GIT_ENV = {
    "GIT_AUTHOR_NAME": "hgm", "GIT_AUTHOR_EMAIL": "hgm@localhost", "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "hgm", "GIT_COMMITTER_EMAIL": "hgm@localhost",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}
TEST_DIRS = {"test", "tests", "testing", "e2e"}
_TEST_NAME = re.compile(r"^(test_.*|.*_tests?\.py|conftest\.py)$")


def _git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: bytes | None = None) -> bytes:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home()), "LANG": "C.UTF-8",
            **GIT_ENV, **(env or {})}
    done = subprocess.run(["git", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", *args], cwd=cwd,
                          env=full, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} failed: {done.stderr.decode(errors='replace').strip()[:500]}")
    return done.stdout


def copy_tree(src: Path, dest: Path, *, with_git: bool) -> None:
    """`cp -a` of src's entries into dest (a new directory), .git only when asked."""
    dest.mkdir(parents=True)
    entries = [str(p) for p in src.iterdir() if with_git or p.name != ".git"]
    if entries:
        subprocess.run(["cp", "-a", "--reflink=auto", *entries, str(dest)], check=True, capture_output=True)


def private_git(workspace: Path) -> Path:
    return workspace.with_name(workspace.name + ".hgm-git")


def make_workspace(task_id: str, env: Environment, dest: Path) -> TaskWorkspace:
    """The agent's repository at `dest` (must not exist) and its harness-owned twin beside it."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    copy_tree(env.testbed, dest, with_git=False)
    _git("init", "-q", "--template=", "-b", "main", cwd=dest)
    _git("add", "-A", cwd=dest)
    if env.tracked:  # tracked upstream although ignored now (force-added files)
        _git("add", "-f", "--pathspec-from-file=-", "--pathspec-file-nul", cwd=dest,
             stdin=b"\0".join(p.encode(errors="surrogateescape") for p in env.tracked if (dest / p).exists()
                              or (dest / p).is_symlink()))
    base = env.image.rsplit("/", 1)[-1]
    _git("commit", "-q", "--no-verify", "--allow-empty", "-m", f"{task_id}: the repository at base_commit ({base})",
         cwd=dest)
    head = _git("rev-parse", "HEAD", cwd=dest).decode().strip()
    shutil.copytree(dest / ".git", private_git(dest), symlinks=True)
    return TaskWorkspace(dest, head)


def agent_patch(workspace: Path) -> str:
    """`git diff` of the workspace's working tree against its base commit, new files included."""
    workspace = Path(workspace)
    git_dir = private_git(workspace)
    if not git_dir.is_dir():
        raise RuntimeError(f"{workspace} was not made by make_workspace (no {git_dir.name} beside it)")
    with tempfile.TemporaryDirectory(prefix="hgm-sweb-index-") as tmp:
        env = {"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(workspace), "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git("read-tree", "HEAD", env=env, cwd=workspace)
        _git("add", "-A", env=env, cwd=workspace)
        return _git("diff", "--cached", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "HEAD",
                    env=env, cwd=workspace).decode(errors="surrogateescape")


def is_test_path(path: str, test_files: list[str]) -> bool:
    """A file of the instance's test_patch, or one that looks like a test by its path."""
    p = PurePosixPath(path)
    return path in test_files or any(part in TEST_DIRS for part in p.parts[:-1]) or bool(_TEST_NAME.match(p.name))


def split_patch(patch: str) -> list[tuple[str, str]]:
    """(path, text) per file of a git diff."""
    blocks: list[tuple[str, str]] = []
    for chunk in re.split(r"(?m)^(?=diff --git )", patch):
        if chunk.startswith("diff --git "):
            first = chunk.splitlines()[0]
            path = first.split(" b/", 1)[-1] if " b/" in first else first.split()[-1]
            blocks.append((path, chunk))
    return blocks


def drop_test_changes(patch: str, test_files: list[str]) -> tuple[str, list[str]]:
    """(the patch without changes to test files, the paths dropped)."""
    kept: list[tuple[str, str]] = []
    dropped: list[tuple[str, str]] = []
    for path, text in split_patch(patch):
        (dropped if is_test_path(path, test_files) else kept).append((path, text))
    return "".join(t for _, t in kept), [p for p, _ in dropped]
