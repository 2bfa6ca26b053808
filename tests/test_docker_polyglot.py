"""Polyglot scoring with the docker backend: the reference solution is solved, the stub is not.

Same scorer, scripts and host-prepared dependencies as with bwrap (mounted at their host paths);
the toolchains come from the evaluation image (or the host's, where Polyglot mounts them in).
Needs a Docker Engine API with the image (`hgm docker build`), and the languages' test
dependencies (`hgm benchmark prepare polyglot`); skips naming what is absent (fails on CI,
which sets them up).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hgm.benchmarks.polyglot import PolyglotBenchmark, deps
from hgm.benchmarks.polyglot.languages import SPECS
from hgm.benchmarks.polyglot.scoring import run_tests
from hgm.benchmarks.polyglot.workspace import make_workspace
from hgm.domain import EvalStatus
from hgm.errors import SandboxUnavailable
from hgm.sandbox import get_sandbox

from engines import missing_engine

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SAMPLE = {
    "python": "python__beer-song",
    "rust": "rust__gigasecond",  # needs the `time` crate, offline, from the host-prepared CARGO_HOME
    "javascript": "javascript__grep",  # jest through the host-prepared node_modules
    "go": "go__dnd-character",  # needs Go >= 1.21
    "java": "java__hangman",  # needs rxjava
    "cpp": "cpp__gigasecond",  # needs boost date_time
}


@pytest.fixture(scope="module")
def docker_sandbox():
    try:
        return get_sandbox("docker")
    except SandboxUnavailable as e:
        missing_engine(f"docker backend unavailable: {e}")


@pytest.mark.parametrize("language", list(SAMPLE))
def test_reference_solved_and_stub_not_in_docker(polyglot_path: Path, tmp_path: Path, docker_sandbox, language):
    if language not in docker_sandbox.toolchains:
        pytest.skip(f"image {docker_sandbox.image} has no {language} toolchain (built with --target ci)")
    if not SPECS[language].toolchain().ok or not deps.is_ready(language):
        missing_engine(f"{language} not prepared on the host: hgm benchmark prepare polyglot --lang {language}")
    bench = PolyglotBenchmark.open(polyglot_path)
    task = bench.task(SAMPLE[language])
    ws = make_workspace(task, tmp_path / "ws")
    for target, example in task.reference_files().items():
        (ws.path / target).parent.mkdir(parents=True, exist_ok=True)
        (ws.path / target).write_bytes((task.path / example).read_bytes())
    t0 = time.monotonic()
    solved = bench.score(task, ws, sandbox=docker_sandbox, log_dir=tmp_path / "ref", timeout_s=300)
    assert solved.status is EvalStatus.SOLVED, f"{solved.detail}\n{solved.output_path.read_text()[-3000:]}"
    print(f"{task.id}: reference scored in {time.monotonic() - t0:.1f} s")

    stub = run_tests(task, {}, sandbox=docker_sandbox, log_dir=tmp_path / "stub", timeout_s=300)
    assert stub.status is EvalStatus.FAILED, f"{stub.detail}\n{stub.output_path.read_text()[-3000:]}"


def test_eval_agent_runs_the_agent_and_the_tests_in_docker(polyglot_path: Path, tmp_path: Path, docker_sandbox):
    """The whole evaluation in containers: the agent (host-built venv, LLM gateway socket mounted
    in, scripted LLM) writes the solution; the tests run in a second container."""
    reference = (polyglot_path / "python/exercises/practice/transpose/.meta/example.py").read_text()
    steps = [
        {"tool_calls": [{"name": "editor", "arguments": {"command": "create", "path": "transpose.py",
                                                          "file_text": reference}}]},
        {"content": "Done."},
    ]  # fmt: skip
    (tmp_path / "solve.json").write_text(json.dumps(steps))
    agent = Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial"
    done = subprocess.run(
        [sys.executable, "-m", "hgm.cli", "eval-agent", str(agent), "python__transpose",
         "--llm", f"scripted:{tmp_path / 'solve.json'}", "--from", str(polyglot_path), "--sandbox", "docker",
         "--output", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "solved" in done.stdout, done.stdout
    assert "transpose.py" in (tmp_path / "logs" / "patch.diff").read_text()
