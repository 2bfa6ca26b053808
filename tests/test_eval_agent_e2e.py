"""`hgm eval-agent` end to end, as a user runs it (a subprocess of the installed CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hgm.archive import init_archive
from hgm.config import dump_config, load_config

INITIAL_AGENT = Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial"
TASK = "python__transpose"


def hgm(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hgm.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def script(tmp_path: Path, polyglot_path: Path) -> str:
    reference = (polyglot_path / "python" / "exercises" / "practice" / "transpose" / ".meta" / "example.py").read_text()
    path = tmp_path / "solve.json"
    path.write_text(json.dumps([
        {"tool_calls": [{"name": "editor", "arguments": {"command": "create", "path": "transpose.py",
                                                          "file_text": reference}}],
         "usage": {"prompt_tokens": 250, "completion_tokens": 30}},
        {"content": "Done.", "usage": {"prompt_tokens": 300, "completion_tokens": 5}},
    ]))
    return f"scripted:{path}"


def test_missing_key_is_named_up_front(polyglot_path, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DEEPSEEK_API_KEY"}
    done = hgm("eval-agent", str(INITIAL_AGENT), TASK, "--llm", "deepseek-chat", "--from", str(polyglot_path),
               env=env, cwd=tmp_path)
    assert done.returncode == 2 and "DEEPSEEK_API_KEY" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "hgm-evals").exists()


def test_unknown_task_and_agent_read_like_help(polyglot_path, tmp_path):
    llm = script(tmp_path, polyglot_path)
    done = hgm("eval-agent", str(INITIAL_AGENT), "python__transpos", "--llm", llm,
               "--from", str(polyglot_path), cwd=tmp_path)
    assert done.returncode == 2 and "python__transpose" in done.stderr
    done = hgm("eval-agent", str(tmp_path / "nope"), TASK, "--llm", llm, "--from", str(polyglot_path))
    assert done.returncode == 2 and "--run-dir" in done.stderr


@pytest.mark.slow
def test_eval_agent_path_solves_and_reports(polyglot_path, tmp_path):
    done = hgm("eval-agent", str(INITIAL_AGENT), TASK, "--llm", script(tmp_path, polyglot_path),
               "--from", str(polyglot_path), "--sandbox", "bwrap", "--output", str(tmp_path / "logs"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "solved" in out and "550 in / 35 out" in out and "time: agent" in out
    assert "Created transpose.py" in (tmp_path / "logs" / "agent" / "chat.md").read_text()
    assert "transpose.py" in (tmp_path / "logs" / "patch.diff").read_text()
    assert str(tmp_path / "logs") in out


@pytest.mark.slow
def test_eval_agent_takes_a_commit_from_a_run_archive(polyglot_path, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump_config(load_config(None, ["sandbox.agent_timeout_s=300"])))
    _, sha = init_archive(run / "archive", INITIAL_AGENT)
    done = hgm("eval-agent", sha[:10], TASK, "--run-dir", str(run), "--llm", script(tmp_path, polyglot_path),
               "--from", str(polyglot_path), "--output", str(tmp_path / "logs"))
    assert done.returncode == 0, done.stderr
    assert "solved" in done.stdout
