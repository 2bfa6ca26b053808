"""The gateway relay: a worker node's sandboxes reach the central gateway through a local Unix
socket; the head's TCP listener wants the run's secret; sandboxes get only the OpenAI routes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from hgm.config import load_config
from hgm.llm.gateway import Gateway
from hgm.llm.relay import SECRET_HEADER, GatewayClient, LocalRelay, RelayListener
from hgm.store import RunStore


def _client(socket: Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://hgm-gateway")


def test_a_node_uses_the_central_gateway_through_the_relay(tmp_path: Path) -> None:
    script = tmp_path / "llm.json"
    script.write_text(json.dumps({"responses": [{"content": "hello from upstream",
                                                 "usage": {"prompt_tokens": 7, "completion_tokens": 3}, "repeat": 2}],
                                  "price": {"input": 1.0, "output": 2.0}}))
    config = load_config(None, [f"llm.downstream=scripted:{script}"])
    store = RunStore.create(tmp_path / "run", config)
    with Gateway(tmp_path / "gw.sock", llm=config.llm, recorder=store.llm.record) as gateway, \
            RelayListener(gateway, "127.0.0.1") as listener, \
            LocalRelay(listener.url, listener.secret, timeout_s=60) as relay:
        listening = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
        mine = [line for line in listening.splitlines() if f":{listener.port} " in line]
        assert mine and all("127.0.0.1:" in line for line in mine), "the listener is on loopback only"
        client = GatewayClient(listener.url, listener.secret, relay)
        token = client.open_session("downstream", config.llm.downstream, node_id=4, task_id="python__x")
        with _client(client.socket_path) as sandbox:  # what an agent in a sandbox on the node does
            r = sandbox.post("/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
                             json={"model": "anything", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == "hello from upstream"
            streamed = sandbox.post("/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
                                    json={"messages": [{"role": "user", "content": "again"}], "stream": True})
            assert streamed.status_code == 200 and "data: [DONE]" in streamed.text, streamed.text
            assert sandbox.get("/v1/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            for path in ("/hgm/sessions/open", "/hgm/sessions/usage"):  # the control API is not theirs
                assert sandbox.post(path, json={"role": "downstream", "model": "x", "token": token}).status_code == 404
            assert sandbox.get("/hgm/run-cap").status_code == 404
            assert sandbox.post("/v1/chat/completions", headers={"Authorization": "Bearer nope"},
                                json={"messages": [{"role": "user", "content": "x"}]}).status_code == 401
        usage = client.close_session(token)
        assert (usage.calls, usage.prompt_tokens, usage.completion_tokens, usage.node_id) == (2, 14, 6, 4)
        assert gateway.run_cost_usd > 0 and not usage.run_capped and gateway.run_cap_reason is None
        assert client.context_window(config.llm.downstream) == gateway.context_window(config.llm.downstream)
        assert store.llm.usage(node_id=4, task_id="python__x").calls == 2, "the head recorded the calls"
        with pytest.raises(Exception, match="unknown gateway session token|400"):
            client.session_usage("no-such-token")
        for headers in ({}, {SECRET_HEADER: "guess"}):  # the listener wants the run's secret
            r = httpx.post(f"{listener.url}/hgm/sessions/open", headers=headers,
                           json={"role": "downstream", "model": config.llm.downstream})
            assert r.status_code == 403
        client.close()
    store.close()


def test_a_relay_whose_head_is_gone_answers_502(tmp_path: Path) -> None:
    with LocalRelay("http://127.0.0.1:9", "s", timeout_s=5) as relay, _client(relay.socket_path) as sandbox:
        r = sandbox.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 502 and "cannot reach the head's gateway" in r.text
