"""Long conversations on the real path: the seed agent in bwrap -> gateway -> scripted LLM with a
context window. Told the window (by the harness, from the provider table or the script), the agent
stays under it; not told, it runs into the provider's context-length error once and stops."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from hgm.agent_runtime import AgentLLM, run_agent
from hgm.config import LLMConfig, load_config
from hgm.llm.gateway import Gateway
from hgm.sandbox import get_sandbox, limits_from
from hgm.store import RunStore

INITIAL_AGENT = Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial"
FLOOD = "head -c 4000 /dev/zero | tr '\\0' x"
STEPS = 12


@pytest.fixture
def short(tmp_path: Path):
    d = Path(tempfile.mkdtemp(prefix="hgmctx", dir="/tmp"))  # Unix socket paths are short
    yield d
    shutil.rmtree(d, ignore_errors=True)


def converse(tmp_path: Path, sock_dir: Path, tell_window: bool) -> tuple[list[tuple], dict, str, int]:
    """(llm calls: id, status, prompt tokens; the last request; the chat log; the agent's exit code)"""
    script = tmp_path / "long.json"
    script.write_text(
        json.dumps(
            {
                "context_window": 6000,
                "responses": [
                    *(
                        {"content": f"step {i}", "tool_calls": [{"name": "bash", "arguments": {"command": FLOOD}}]}
                        for i in range(STEPS)
                    ),
                    {"content": "Done."},
                ],
            }
        )
    )
    model = f"scripted:{script}"
    store = RunStore.create(tmp_path / "run", load_config())
    workspace = tmp_path / "ws"
    workspace.mkdir()
    config = load_config()
    with Gateway(sock_dir / "gw.sock", llm=LLMConfig(), recorder=store.llm.record, env={}) as gw:
        token = gw.open_session("downstream", model)
        window = gw.context_window(model) if tell_window else None
        run = run_agent(INITIAL_AGENT, workspace, "base", "Print a lot.", language="python",
                        llm=AgentLLM(gw.socket_path, token, model, window), sandbox=get_sandbox("bwrap"),
                        limits=limits_from(config.sandbox), timeout_s=300, log_dir=tmp_path / "logs")
        gw.close_session(token)
    calls = store._read("SELECT id, status, prompt_tokens FROM llm_calls ORDER BY id")
    last = store.llm.request(calls[-1][0])
    store.close()
    return calls, last, run.chat_path.read_text(), run.exit_code


def test_told_the_window_the_agent_elides_old_output_and_never_overflows(tmp_path: Path, short: Path) -> None:
    calls, last, chat, code = converse(tmp_path, short, tell_window=True)
    assert code == 0 and "## Stopped\n\ndone" in chat
    assert [c[1] for c in calls] == ["ok"] * (STEPS + 1), "no request was refused as too long"
    assert max(c[2] for c in calls) <= 6000
    outputs = [m["content"] for m in last["messages"] if m["role"] == "tool"]
    assert len(outputs) == STEPS and "output elided" in outputs[0] and "x" * 4000 in outputs[-1]
    assert chat.count("x" * 4000) == STEPS, "the chat log keeps every output whole"


def test_not_told_the_window_a_context_error_stops_the_agent_once(tmp_path: Path, short: Path) -> None:
    calls, _, chat, code = converse(tmp_path, short, tell_window=False)
    statuses = [c[1] for c in calls]
    assert statuses[-1] == "context_length" and statuses.count("context_length") == 1, statuses
    assert set(statuses[:-1]) == {"ok"}
    assert code == 3 and "LLM error: context window exceeded" in chat
