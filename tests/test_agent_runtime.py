"""The agent runtime: venvs cached by requirements, the sandbox argv / mounts / environment."""

import os
import shutil
import threading
from pathlib import Path

import pytest

from hgm import agent_runtime
from hgm.agent_runtime import AgentLLM, agent_env, agent_mounts, agent_venv, venv_key
from hgm.sandbox.base import Mount

INITIAL_AGENT = Path(agent_runtime.__file__).parent / "agents" / "initial"


def test_venv_is_built_once_and_shared_by_concurrent_callers(tmp_path, monkeypatch):
    monkeypatch.setenv("HGM_CACHE_DIR", str(tmp_path / "cache"))
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "requirements.txt").write_text("# nothing\n")
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(agent_venv(agent))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 3
    venv = results[0]
    assert venv.parent == tmp_path / "cache" / "venvs" and (venv / "bin" / "python").exists()
    assert [p.name for p in venv.parent.iterdir() if ".tmp-" in p.name] == []  # no half-built venv left
    inode = venv.stat().st_ino
    assert agent_venv(agent) == venv and venv.stat().st_ino == inode  # cached, not rebuilt
    # the renamed venv works: its python runs and knows its own prefix
    out = os.popen(f"{venv}/bin/python -c 'import sys; print(sys.prefix)'").read().strip()
    assert out == str(venv)


def test_venv_key_depends_on_requirements():
    assert venv_key("openai>=1\n") == venv_key("openai>=1")
    assert venv_key("openai>=1") != venv_key("openai>=2")


def test_a_requirement_that_cannot_install_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HGM_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "requirements.txt").write_text("hgm-no-such-package-on-any-index==0.0.1\n")
    with pytest.raises(agent_runtime.VenvBuildError, match="requirements"):
        agent_venv(tmp_path)
    assert list((tmp_path / "cache" / "venvs").iterdir()) == [next((tmp_path / "cache" / "venvs").glob("*.lock"))]


@pytest.mark.parametrize("line", ["./evil", "-e .", "--index-url http://evil/simple", "x @ https://evil/x.whl",
                                  "git+https://evil/x.git", "/abs/path/pkg"])
def test_requirements_that_would_run_agent_code_outside_the_sandbox_are_refused(line, tmp_path, monkeypatch):
    monkeypatch.setenv("HGM_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "requirements.txt").write_text(f"openai>=1.40\n{line}\n")
    with pytest.raises(agent_runtime.VenvBuildError, match="not a plain requirement"):
        agent_venv(tmp_path)


def test_plain_requirements_pass_the_check():
    agent_runtime.check_requirements(
        "# deps\nopenai>=1.40,<4  # client\nhttpx[http2]>=0.27; python_version >= '3.8'\n\n"
    )


def test_agent_sees_only_its_mounts_and_a_session_token(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-real-secret")
    llm = AgentLLM(socket=tmp_path / "gw.sock", token="session-tok", model="deepseek-chat")
    env = agent_env(llm, tmp_path / "venv", timeout_s=600)
    assert env["OPENAI_API_KEY"] == "session-tok" and "sk-real-secret" not in str(env)
    assert env["HGM_LLM_SOCKET"] == str(tmp_path / "gw.sock")
    assert env["PATH"].startswith(str(tmp_path / "venv" / "bin"))
    mounts = agent_mounts(tmp_path / "agent", tmp_path / "venv", tmp_path / "ws", tmp_path / "session", llm.socket)
    rw = {m.target for m in mounts if not m.read_only}
    assert rw == {str(tmp_path / "ws"), str(tmp_path / "session"), str(tmp_path / "gw.sock")}
    assert {str(tmp_path / "agent"), str(tmp_path / "venv")} <= {m.target for m in mounts if m.read_only}
    assert all(str(m.source) == m.target for m in mounts)  # host paths keep their names inside


@pytest.mark.slow
def test_initial_agent_own_tests_pass_in_its_venv_inside_bwrap(tmp_path):
    """What the harness does when validating a rewritten child: its tests, its venv, sandboxed."""
    from hgm.sandbox import get_sandbox

    sandbox = get_sandbox("bwrap")
    agent = tmp_path / "agent"  # a copy, like a child's checkout (the sandbox mounts it read-only)
    shutil.copytree(INITIAL_AGENT, agent, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    venv = agent_venv(agent)
    result = sandbox.exec(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=str(agent), env={"PATH": f"{venv}/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=300, mounts=[Mount(agent, str(agent)), Mount(venv, str(venv))],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout
