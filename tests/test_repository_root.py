"""The repository's top level holds only what belongs there, so a stray file (an empty `oom` came
back twice through merges) fails CI instead of shipping."""

from __future__ import annotations

import subprocess

from conftest import REPO

ALLOWED = {
    ".ci", ".gitignore", "README.md", "pyproject.toml",
    "bench", "docker", "docs", "hgm", "scripts", "tests",
    "examples",  # issue 18's example targets
}


def test_the_repository_root_holds_only_the_allowed_entries():
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    top = {path.split("/")[0] for path in files}
    assert top and top <= ALLOWED, (
        f"unexpected at the repository root: {sorted(top - ALLOWED)} (add to ALLOWED if meant)"
    )
