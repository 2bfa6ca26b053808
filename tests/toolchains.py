"""The one rule for tests that need a Polyglot language's toolchain and prepared dependencies:
skipped with the fix on a developer's machine, failed on CI (which installs them all)."""

from __future__ import annotations

import os

import pytest

from hgm.benchmarks.polyglot import deps
from hgm.benchmarks.polyglot.languages import SPECS


def require_language(language: str) -> None:
    tc = SPECS[language].toolchain()
    problem = None if tc.ok else tc.fix
    if problem is None and not deps.is_ready(language):
        problem = f"hgm benchmark prepare polyglot --lang {language}"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{language} not set up on CI: {problem}")
        pytest.skip(f"{language} not set up: {problem}")
