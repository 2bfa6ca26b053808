"""Task workspaces (what the agent sees) and reading an agent's solution back out of one.

The agent's workspace is a git repo with the stubs, the docs and the build files, one commit,
no tests and no .meta. When scoring, only the solution files (plus new files matching the
language's `extra_solution_globs`, e.g. Java helper classes) are read back; anything else the
agent did there is ignored. Only regular files inside the workspace count: a symlink is ignored.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
from pathlib import Path

from hgm.benchmarks import TaskWorkspace
from hgm.benchmarks.polyglot.languages import SPECS
from hgm.benchmarks.polyglot.loader import PolyglotTask

MAX_FILE_BYTES = 1_000_000
"""A solution file larger than this is not read back (treated as absent)."""
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "hgm", "GIT_AUTHOR_EMAIL": "hgm@localhost",
    "GIT_COMMITTER_NAME": "hgm", "GIT_COMMITTER_EMAIL": "hgm@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}

Changes = dict[str, bytes | None]
"""Solution path (relative) -> new content, or None when the agent deleted it."""


def _ignore_meta(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n == ".meta"]


def copy_exercise(task: PolyglotTask, parent: Path) -> Path:
    """The exercise as the benchmark has it (stubs, tests, build files), without .meta, at
    parent/<name> (C++'s CMakeLists reads the exercise name from the folder name). Writable."""
    dest = parent / task.name
    shutil.copytree(task.path, dest, ignore=_ignore_meta, copy_function=shutil.copyfile)
    for dirpath, _, _ in os.walk(dest):  # the tree may be read-only; copies must not be
        os.chmod(dirpath, 0o755)
    return dest


def make_workspace(task: PolyglotTask, dest: Path) -> TaskWorkspace:
    """Create the agent's git workspace at `dest` (must not exist), with one base commit."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = copy_exercise(task, dest.parent / f".{dest.name}.tmp")
    for rel in task.test_files + _editor_files(task):
        (tmp / rel).unlink(missing_ok=True)
    _prune_empty_dirs(tmp)
    tmp.rename(dest)
    tmp.parent.rmdir()
    env = {**os.environ, **_GIT_ENV}
    for argv in (["git", "init", "-q", "--template=", "-b", "main"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "--no-verify", "-m", f"{task.id}: task workspace"]):
        subprocess.run(argv, cwd=dest, env=env, check=True, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, env=env, check=True, capture_output=True, text=True)
    return TaskWorkspace(dest, head.stdout.strip())


def _editor_files(task: PolyglotTask) -> tuple[str, ...]:
    """Test-support files (Go's cases_test.go, ...) that the agent must not see either."""
    files = json.loads((task.path / ".meta" / "config.json").read_text())["files"]
    return tuple(f for f in files.get("editor", ()) if "test" in Path(f).name.lower())


def _prune_empty_dirs(root: Path) -> None:
    for dirpath, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
        if dirpath != str(root) and not os.listdir(dirpath):
            os.rmdir(dirpath)


def _read_regular(root: Path, rel: str) -> bytes | None:
    """The file's bytes if it is a regular file inside `root` (no symlink anywhere on the way)."""
    path = root / rel
    try:
        if path.is_symlink() or path.resolve() != root.resolve() / rel:
            return None
        st = path.stat()
    except OSError:
        return None
    if not path.is_file() or st.st_size > MAX_FILE_BYTES:
        return None
    return path.read_bytes()


def solution_paths(task: PolyglotTask, root: Path) -> list[str]:
    """The task's solution files plus files under `root` matching the language's extra globs
    (never a test file)."""
    paths = list(task.solution_files)
    tests = set(task.test_files)
    for pattern in SPECS[task.language].extra_solution_globs:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root).as_posix()
            if rel not in paths and rel not in tests and "test" not in Path(rel).parts:
                paths.append(rel)
    return paths


def solution_changes(task: PolyglotTask, workspace: Path) -> Changes:
    """What the agent changed among the solution files, compared with the benchmark's stubs."""
    changes: Changes = {}
    for rel in dict.fromkeys(solution_paths(task, workspace) + solution_paths(task, task.path)):
        stub = _read_regular(task.path, rel)
        mine = _read_regular(workspace, rel)
        if mine != stub:
            changes[rel] = mine
    return changes


def reference_changes(task: PolyglotTask) -> Changes:
    """The reference solution as changes to the stubs (for validation)."""
    return {target: (task.path / example).read_bytes() for target, example in task.reference_files().items()}


def apply_changes(copy: Path, changes: Changes) -> None:
    for rel, content in changes.items():
        path = copy / rel
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def diff(task: PolyglotTask, changes: Changes) -> str:
    """A git-style unified diff of the changes against the stubs."""
    out: list[str] = []
    for rel, new in sorted(changes.items()):
        old = _read_regular(task.path, rel)
        a = old.decode(errors="replace").splitlines(keepends=True) if old is not None else []
        b = new.decode(errors="replace").splitlines(keepends=True) if new is not None else []
        out.append(f"diff --git a/{rel} b/{rel}\n")
        if old is None:
            out.append("new file mode 100644\n")
        if new is None:
            out.append("deleted file mode 100644\n")
        body = difflib.unified_diff(a, b, "/dev/null" if old is None else f"a/{rel}",
                                    "/dev/null" if new is None else f"b/{rel}")
        out.extend(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in body)
    return "".join(out)
