"""What a sandboxed agent must not be able to do, tried by the real agent through its bash tool:
read the real API key, reach the network, or change the harness's record of its tokens."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from hgm.benchmarks import get_benchmark
from hgm.config import BenchmarkConfig, load_config
from hgm.evaluate import evaluate
from hgm.llm.gateway import Gateway
from hgm.llm.scripted import ScriptedServer
from hgm.sandbox import get_sandbox
from hgm.store import RunStore

INITIAL_AGENT = Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial"
REAL_KEY = "sk-FAKE-REAL-KEY-4c0ffee5ca1ab1e"
pytestmark = pytest.mark.slow


def bash(command: str) -> dict:
    args = {"command": command, "timeout_s": 280}  # the grep over everything visible takes a while
    return {"tool_calls": [{"name": "bash", "arguments": args}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10}}


def test_agent_cannot_see_the_key_reach_the_network_or_touch_the_store(tmp_path, polyglot_path, monkeypatch):
    run_dir = tmp_path / "run"
    config = load_config(None, ["llm.backoff_initial_s=0", "llm.max_retries=0", "sandbox.agent_timeout_s=600"])
    store = RunStore.create(run_dir, config)
    node = store.add_node(None, None, "initial")
    (run_dir / "provider-secret.txt").write_text(REAL_KEY)  # a harness-side file holding the key
    monkeypatch.setenv("HGM_API_KEY", REAL_KEY)  # the key in the harness's own environment too
    db = run_dir / "run.sqlite"
    tamper = (f"import sqlite3; c = sqlite3.connect('{db}'); "
              "c.execute('UPDATE llm_calls SET prompt_tokens = 0'); c.commit(); print('TAM' + 'PERED')")
    listener = socket.create_server(("127.0.0.1", 0))  # a service on the host's loopback
    port = listener.getsockname()[1]
    probe = (f"import socket\nfor addr in [('127.0.0.1', {port}), ('1.1.1.1', 443), ('pypi.org', 443)]:\n"
             "    try:\n        socket.create_connection(addr, timeout=3); print('CON' + 'NECTED', addr)\n"
             "    except OSError as e:\n        print('BLO' + 'CKED', addr, e)\n")
    steps = [
        bash("env; echo ENV-DONE"),
        bash("cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; echo PROC-DONE"),
        # the pattern is assembled at run time, so the command itself never holds the key
        bash(f"timeout 250 grep -rIl --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr --exclude-dir=dev "
             f"\"$(printf '%s' '{REAL_KEY[:6]}' '{REAL_KEY[6:]}')\" / 2>/dev/null | sed \"s/^/$(printf 'LE%s' AK):/\"; "
             "echo GREP-DONE"),
        bash(f"ls -la {run_dir} 2>&1; cat {run_dir}/provider-secret.txt 2>&1; echo LS-DONE"),
        bash(f"python -c \"{tamper}\" 2>&1; echo x >> {db} 2>&1; echo TAMPER-DONE"),
        bash(f"python -c \"{probe}\"; echo NET-DONE"),
        {"content": "Done."},
    ]
    server = ScriptedServer(_write(tmp_path / "upstream.json", steps)).start()
    try:
        config.llm.downstream = f"scripted-model@{server.base_url}"  # an upstream that needs HGM_API_KEY
        with Gateway(tmp_path / "gw.sock", llm=config.llm, budget=config.budget, recorder=store.llm.record) as gw:
            benchmark = get_benchmark(BenchmarkConfig(path=polyglot_path))
            task = benchmark.task("python__transpose")
            report = evaluate(
                INITIAL_AGENT,
                task,
                benchmark=benchmark,
                gateway=gw,
                sandbox=get_sandbox("bwrap"),
                config=config,
                log_dir=run_dir / "nodes" / str(node) / "evals" / "probe",
                run_dir=run_dir,
                node_id=node,
            )
        # the key did reach the upstream (so it was really in play) ...
        assert any(r["headers"].get("authorization") == f"Bearer {REAL_KEY}" for r in server.requests)
    finally:
        server.stop()
        listener.close()
    chat = report.chat.read_text()
    for marker in ("ENV-DONE", "PROC-DONE", "GREP-DONE", "LS-DONE", "TAMPER-DONE", "NET-DONE"):
        assert marker in chat, f"the agent's command did not run: {marker}\n{chat[-3000:]}"
    assert "OPENAI_API_KEY=hgm-session-" in chat  # env was really printed: the agent holds a session token
    # ... but nothing the agent saw contains it: not the chat log, not what the LLM was sent, not its output
    seen = chat + report.agent.stdout_path.read_text() + report.agent.stderr_path.read_text()
    seen += json.dumps([r["body"] for r in server.requests])
    assert REAL_KEY not in seen
    assert "LEAK:" not in chat  # no file the agent can see holds the key
    assert "CONNECTED" not in chat and chat.count("BLOCKED") == 3
    assert "TAMPERED" not in chat
    # the store still has the tokens the gateway counted: 6 answered calls of 100 + 10 tokens
    usage = store.llm.usage(task_id=task.id)
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        report.outcome.prompt_tokens,
        report.outcome.completion_tokens,
    )
    assert usage.prompt_tokens >= 600 and usage.completion_tokens >= 60
    assert RunStore.open(run_dir, readonly=True).llm.usage(task_id=task.id) == usage


def _write(path: Path, steps: list) -> Path:
    path.write_text(json.dumps({"responses": steps}))
    return path
