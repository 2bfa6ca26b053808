"""Polyglot scoring end to end through the real toolchains inside bwrap (slow).

Two exercises per language: the reference solution, written into a real task workspace, must be
solved; the untouched stub's tests must fail. Needs scripts/install_toolchains.sh (toolchains and
the prepared shared dependencies); on CI a missing piece fails, elsewhere it skips naming the fix.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hgm.benchmarks.polyglot import PolyglotBenchmark, deps
from hgm.benchmarks.polyglot.scoring import run_tests
from hgm.benchmarks.polyglot.workspace import make_workspace
from hgm.domain import EvalStatus
from hgm.sandbox import get_sandbox

from toolchains import require_language

pytestmark = pytest.mark.slow

SAMPLE = [
    "python__beer-song", "python__dot-dsl",
    "go__book-store", "go__dnd-character",
    "javascript__bottle-song", "javascript__grep",
    "rust__variable-length-quantity", "rust__gigasecond",  # gigasecond needs the `time` crate offline
    "java__sgf-parsing", "java__hangman",  # hangman needs rxjava
    "cpp__all-your-base", "cpp__gigasecond",  # gigasecond needs boost date_time
]


@pytest.fixture(scope="module")
def bwrap():
    return get_sandbox("bwrap")


@pytest.mark.parametrize("task_id", SAMPLE)
def test_reference_solved_and_stub_not(polyglot_path: Path, tmp_path: Path, bwrap, task_id: str) -> None:
    bench = PolyglotBenchmark.open(polyglot_path)
    task = bench.task(task_id)
    require_language(task.language)
    ws = make_workspace(task, tmp_path / "ws")
    for target, example in task.reference_files().items():
        (ws.path / target).parent.mkdir(parents=True, exist_ok=True)
        (ws.path / target).write_bytes((task.path / example).read_bytes())
    solved = bench.score(task, ws, sandbox=bwrap, log_dir=tmp_path / "ref", timeout_s=300)
    assert solved.status is EvalStatus.SOLVED, f"{solved.detail}\n{solved.output_path.read_text()[-3000:]}"
    stub = run_tests(task, {}, sandbox=bwrap, log_dir=tmp_path / "stub", timeout_s=300)
    assert stub.status is EvalStatus.FAILED, f"{stub.detail}\n{stub.output_path.read_text()[-3000:]}"


def test_sandboxed_tests_cannot_write_shared_deps(polyglot_path: Path, tmp_path: Path, bwrap) -> None:
    """A solution that tries to poison the shared node_modules fails to (read-only mount)."""
    require_language("javascript")
    bench = PolyglotBenchmark.open(polyglot_path)
    task = bench.task("javascript__bottle-song")
    target = deps.deps_dir("javascript") / "node_modules" / "jest" / "package.json"
    before = target.read_bytes()
    # the path is decoded at run time: as a literal it names the framework and hgm, which the static
    # tripwire (tripwire.py) flags before the write could be tried, and this test is about the mount
    hidden = base64.b64encode(str(target).encode()).decode()
    evil = (task.path / ".meta" / "proof.ci.js").read_text() + (
        f"\nconst fs = require('fs');\nconst target = Buffer.from('{hidden}', 'base64').toString();\n"
        "try { fs.writeFileSync(target, 'poisoned'); } catch (e) { console.log('write refused: ' + e.code); }\n")
    result = run_tests(task, {"bottle-song.js": evil.encode()}, sandbox=bwrap, log_dir=tmp_path, timeout_s=300)
    assert target.read_bytes() == before
    assert result.status is EvalStatus.SOLVED and "write refused: EROFS" in result.output_path.read_text()
