"""The gateway over a real Unix socket, driven by the openai SDK as an agent would, with the
scripted LLM (real HTTP) upstream."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from hgm.config import BudgetConfig, LLMConfig
from hgm.llm.gateway import GATEWAY_BASE_URL, Gateway, SessionBudget
from hgm.llm.providers import ProviderTable
from hgm.llm.scripted import ScriptedServer

FAST = dict(max_retries=3, backoff_initial_s=0.01, backoff_max_s=0.05, request_timeout_s=5)
USER = [{"role": "user", "content": "solve it"}]


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~108 bytes: pytest's tmp_path can be too long.
    d = Path(tempfile.mkdtemp(prefix="hgmgw", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_script(d: Path, data: Any, name: str = "script.yaml") -> Path:
    path = d / name
    path.write_text(yaml.safe_dump(data))
    return path


class Calls(list):
    """A recorder with RunStore.llm.record's keyword signature."""

    def __call__(self, *, session: str, role: str, model: str, node_id: int | None, task_id: str | None,
                 status: str, attempts: int, latency_s: float, prompt_tokens: int, completion_tokens: int,
                 cached_tokens: int, cost_usd: float | None, request: dict, response_json: str | None,
                 error: str | None) -> int:
        self.append(dict(locals()))
        return len(self)


def agent(gw: Gateway, token: str, retries: int = 0) -> openai.OpenAI:
    """The client an agent builds from the environment the harness hands it."""
    env = gw.agent_env(token, gw.socket_path)
    return openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], max_retries=retries,
                         http_client=httpx.Client(transport=httpx.HTTPTransport(uds=env["HGM_LLM_SOCKET"])))


def gateway(
    d: Path,
    calls: Calls | None = None,
    env: dict[str, str] | None = None,
    providers: ProviderTable | None = None,
    budget: BudgetConfig | None = None,
    used_before: dict | None = None,
    **llm: Any,
) -> Gateway:
    return Gateway(d / "gw.sock", llm=LLMConfig(**{**FAST, **llm}), budget=budget, recorder=calls,
                   env=env or {}, providers=providers, used_before=used_before)


def deepseek_at(d: Path, url: str) -> ProviderTable:
    user = d / "providers.yaml"
    user.write_text(yaml.safe_dump({"providers": {"deepseek": {"base_url": url, "key_env": "DEEPSEEK_API_KEY"}}}))
    return ProviderTable.load(user)


def test_auth_model_override_usage_and_cost(sock_dir: Path) -> None:
    steps = {"usage_style": "deepseek", "responses": [
        {"content": "hi", "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "cached_tokens": 600}}]}
    calls = Calls()
    with (
        ScriptedServer(write_script(sock_dir, steps)) as upstream,
        gateway(
            sock_dir, calls, env={"DEEPSEEK_API_KEY": "sk-real"}, providers=deepseek_at(sock_dir, upstream.base_url)
        ) as gw,
    ):
        token = gw.open_session("downstream", "deepseek-chat", node_id=3, task_id="python__bob")
        with pytest.raises(openai.AuthenticationError):
            agent(gw, "hgm-session-wrong").chat.completions.create(model="x", messages=USER)
        client = agent(gw, token)
        assert [m.id for m in client.models.list()] == ["deepseek-chat"]
        reply = client.chat.completions.create(model="gpt-4o", messages=USER)
        received = upstream.requests[-1]
        usage = gw.close_session(token)
        with pytest.raises(openai.AuthenticationError):  # a closed session's token is dead
            client.chat.completions.create(model="x", messages=USER)
    assert reply.choices[0].message.content == "hi"
    assert received["body"]["model"] == "deepseek-chat"  # the agent's choice is overridden
    assert received["headers"]["authorization"] == "Bearer sk-real"
    expected = (400 * 0.28 + 600 * 0.028 + 200 * 0.42) / 1e6
    assert (usage.calls, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (1, 1000, 200, 600)
    assert usage.cost_usd == pytest.approx(expected) and not usage.over_budget and not usage.upstream_failed
    [call] = calls
    assert (call["role"], call["model"], call["node_id"], call["task_id"], call["status"], call["attempts"]) == (
        "downstream", "deepseek-chat", 3, "python__bob", "ok", 1)
    assert call["cost_usd"] == pytest.approx(expected) and call["cached_tokens"] == 600
    assert call["request"]["model"] == "deepseek-chat"
    assert json.loads(call["response_json"])["choices"][0]["message"]["content"] == "hi"


def test_retry_500_then_success_is_one_call_with_two_attempts(sock_dir: Path) -> None:
    calls = Calls()
    script = write_script(sock_dir, [{"fault": 500}, {"fault": 429, "retry_after": 0}, {"content": "finally"}])
    with gateway(sock_dir, calls) as gw:
        token = gw.open_session("downstream", f"scripted:{script}")
        first = agent(gw, token).chat.completions.create(model="x", messages=USER)
        received = gw.scripted_server(f"scripted:{script}").requests
    assert first.choices[0].message.content == "finally"
    assert [c["attempts"] for c in calls] == [3] and calls[0]["status"] == "ok"
    assert len(received) == 3 and all(r["headers"]["x-hgm-session"] == "s1-downstream" for r in received)


def test_upstream_down_marks_session_upstream_failed(sock_dir: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"m@http://127.0.0.1:{s.getsockname()[1]}/v1"
    calls = Calls()
    with gateway(sock_dir, calls, max_retries=2) as gw:
        token = gw.open_session("downstream", dead)
        client = agent(gw, token)
        for _ in range(2):
            with pytest.raises(openai.APIStatusError) as e:
                client.chat.completions.create(model="x", messages=USER)
            assert e.value.status_code == 502 and e.value.body["type"] == "upstream_failed"
        usage = gw.session_usage(token)
    assert usage.upstream_failed and "connection error" in usage.failure
    assert [(c["status"], c["attempts"]) for c in calls] == [("upstream_failed", 3), ("upstream_failed", 0)]


def test_budget_cap_refuses_the_session_while_others_go_on(sock_dir: Path) -> None:
    script = write_script(sock_dir, {"rules": [{"match": ".", "content": "ok",
                                                "usage": {"prompt_tokens": 60, "completion_tokens": 10}}]})
    calls = Calls()
    with gateway(sock_dir, calls, budget=BudgetConfig(max_tokens_session=100)) as gw:
        capped = gw.open_session("downstream", f"scripted:{script}")
        other = gw.open_session("downstream", f"scripted:{script}")
        roomy = gw.open_session("downstream", f"scripted:{script}", budgets=SessionBudget(max_tokens=10_000))
        client = agent(gw, capped)
        client.chat.completions.create(model="x", messages=USER)  # 70 tokens
        client.chat.completions.create(model="x", messages=USER)  # 140: delivered, crossed the cap
        assert not gw.session_usage(capped).over_budget  # not cut off yet
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="x", messages=USER)
        assert e.value.status_code == 402 and e.value.body["type"] == "budget_exceeded"
        assert gw.session_usage(capped).over_budget and "token budget" in gw.session_usage(capped).failure
        for token in (other, roomy):
            assert agent(gw, token).chat.completions.create(model="x", messages=USER).choices[0].message.content == "ok"
        for _ in range(3):
            agent(gw, roomy).chat.completions.create(model="x", messages=USER)
        assert not gw.session_usage(roomy).over_budget
    assert calls[2]["status"] == "over_budget" and calls[2]["attempts"] == 0


def test_session_cost_cap_refuses_the_next_request(sock_dir: Path) -> None:
    script = write_script(
        sock_dir,
        {
            "price": {"input": 1000.0, "output": 1000.0},
            "rules": [{"match": ".", "content": "ok", "usage": {"prompt_tokens": 5, "completion_tokens": 5}}],
        },
    )
    with gateway(sock_dir, budget=BudgetConfig(max_usd_session=0.015)) as gw:  # each call costs $0.01
        token = gw.open_session("downstream", f"scripted:{script}")
        client = agent(gw, token)
        for _ in range(2):
            client.chat.completions.create(model="x", messages=USER)
        with pytest.raises(openai.APIStatusError, match="session cost budget"):
            client.chat.completions.create(model="x", messages=USER)
        usage = gw.session_usage(token)
        assert usage.over_budget and not usage.run_capped and gw.run_cap_reason is None


def hammer(gw: Gateway, model: str, sessions: int, calls: int, **kwargs: Any) -> dict[str, list[str]]:
    """`sessions` agents in parallel, each asking up to `calls` times; what each got ("ok" or the error)."""
    got: dict[str, list[str]] = {}

    def run(i: int) -> None:
        client, seen = agent(gw, gw.open_session("downstream", model, task_id=f"t{i}")), []
        for _ in range(calls):
            try:
                client.chat.completions.create(model="x", messages=USER, **kwargs)
                seen.append("ok")
            except openai.APIStatusError as e:
                seen.append(e.message)
        got[f"t{i}"] = seen
    threads = [threading.Thread(target=run, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return got


def test_run_cost_cap_holds_with_work_in_flight(sock_dir: Path) -> None:
    # Each answer takes 0.2 s, so six agents always have requests in flight together; each request
    # reserves its bound (prompt estimate + max_tokens at the price) before it is forwarded.
    script = write_script(sock_dir, {"price": {"input": 100.0, "output": 200.0},
                                     "rules": [{"match": ".", "content": "a fairly short answer", "delay_s": 0.2}]})
    calls = Calls()
    cap = 0.25
    with gateway(sock_dir, calls, budget=BudgetConfig(max_usd_run=cap)) as gw:
        got = hammer(gw, f"scripted:{script}", sessions=6, calls=40, max_tokens=100)
        reason = gw.run_cap_reason
        spent, by_role = gw.run_cost_usd, gw.usage_by_role()
    answered = [c for c in calls if c["status"] == "ok"]
    one_request = max(c["cost_usd"] for c in answered)
    assert len(answered) >= 10, "the cap leaves room for many requests"
    assert spent == pytest.approx(sum(c["cost_usd"] for c in answered))
    assert spent <= cap + one_request, (spent, cap, one_request)
    assert spent <= cap  # the reservations are upper bounds here, so not even one request over
    assert reason is not None and "cost cap $0.25 reached" in reason
    for seen in got.values():  # once the budget cannot pay for a request, no session gets another
        assert seen == sorted(seen, key=lambda m: m != "ok") and seen[-1] != "ok", seen
    refused = [c for c in calls if c["status"] == "run_cap"]
    assert refused and all(c["attempts"] == 0 and c["cost_usd"] == 0.0 for c in refused)
    assert by_role["downstream"].calls == len(calls) and by_role["downstream"].known_cost_usd == pytest.approx(spent)


def test_a_request_that_fits_after_others_settle_waits_instead_of_failing(sock_dir: Path) -> None:
    script = write_script(sock_dir, {"price": {"input": 100.0, "output": 200.0},
                                     "rules": [{"match": ".", "content": "ok", "delay_s": 0.3}]})
    with gateway(sock_dir, budget=BudgetConfig(max_usd_run=0.06)) as gw:  # one bound is ~$0.02 (100 tokens out)
        got = hammer(gw, f"scripted:{script}", sessions=4, calls=1, max_tokens=100)
        assert gw.run_cap_reason is None
    assert got == {f"t{i}": ["ok"] for i in range(4)}


def test_unknown_price_is_bounded_by_the_run_token_cap(sock_dir: Path) -> None:
    script = write_script(sock_dir, {"max_output": 50, "rules": [{"match": ".", "content": "no price here",
                                                                  "delay_s": 0.1}]})
    calls = Calls()
    with gateway(sock_dir, calls, budget=BudgetConfig(max_usd_run=0.01, max_tokens_run=2000)) as gw:
        got = hammer(gw, f"scripted:{script}", sessions=4, calls=60)  # no max_tokens: the script's max_output
        tokens, reason = gw.run_tokens, gw.run_cap_reason
        assert gw.run_cost_usd == 0.0
    used = sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls)
    assert tokens == used and 1000 < used <= 2000
    assert reason is not None and "token cap 2000 reached" in reason
    assert all(c["cost_usd"] is None for c in calls if c["status"] == "ok")
    assert sum(seen.count("ok") for seen in got.values()) == sum(c["status"] == "ok" for c in calls)


def test_resumed_gateway_counts_what_was_spent_before(sock_dir: Path) -> None:
    from hgm.domain import Usage

    script = write_script(
        sock_dir, {"price": {"input": 100.0, "output": 200.0}, "rules": [{"match": ".", "content": "ok"}]}
    )
    before = {"downstream": Usage(3, 100, 50, 0, 0.05, 0.05)}
    with gateway(sock_dir, budget=BudgetConfig(max_usd_run=0.06), used_before=before) as gw:
        assert (gw.run_cost_usd, gw.run_tokens) == (0.05, 150)
        with pytest.raises(openai.APIStatusError, match="cost cap"):  # $0.01 left; one bound is ~$0.02
            agent(gw, gw.open_session("downstream", f"scripted:{script}")).chat.completions.create(
                model="x", messages=USER, max_tokens=100)
        assert gw.usage_by_role()["downstream"].calls == 4


def test_cassette_record_then_replay_without_upstream(sock_dir: Path) -> None:
    script = write_script(
        sock_dir, [{"content": "one"}, {"tool_calls": [{"name": "bash", "arguments": {"command": "ls"}}]}]
    )
    cassette = sock_dir / "tape.jsonl"
    second_turn = USER + [{"role": "assistant", "content": "one"}, {"role": "user", "content": "go on"}]
    with ScriptedServer(script) as upstream:
        model = f"m@{upstream.base_url}"
        with gateway(sock_dir, cassette=cassette, cassette_mode="record") as gw:
            client = agent(gw, gw.open_session("downstream", model))
            recorded = [client.chat.completions.create(model="x", messages=m).model_dump() for m in (USER, second_turn)]
    assert len(cassette.read_text().splitlines()) == 2
    calls = Calls()
    with gateway(sock_dir, calls, cassette=cassette, cassette_mode="replay") as gw:  # upstream is gone
        token = gw.open_session("downstream", model)
        client = agent(gw, token)
        replayed = [client.chat.completions.create(model="x", messages=m).model_dump() for m in (USER, second_turn)]
        with pytest.raises(openai.APIStatusError) as e:  # not on the tape
            client.chat.completions.create(model="x", messages=[{"role": "user", "content": "new"}])
        assert e.value.status_code == 502 and "no recorded exchange" in e.value.message
        assert gw.session_usage(token).upstream_failed
    assert replayed == recorded
    assert [c["status"] for c in calls] == ["ok", "ok", "upstream_failed"]


def test_malformed_tool_call_json_passes_through(sock_dir: Path) -> None:
    broken = '{"command": "ls", '
    script = write_script(
        sock_dir,
        [
            {"tool_calls": [{"name": "bash", "arguments": broken, "id": "call_x"}]},
            {
                "content": "saw {{last_tool_call_id}}: {{last_message}}",
                "tool_calls": [{"name": "bash", "arguments": {"command": "echo {{last_message}}"}}],
            },
        ],
    )
    with gateway(sock_dir) as gw:
        client = agent(gw, gw.open_session("downstream", f"scripted:{script}"))
        first = client.chat.completions.create(model="x", messages=USER)
        call = first.choices[0].message.tool_calls[0]
        history = USER + [first.choices[0].message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": call.id, "content": 'bad "arguments"'}]
        second = client.chat.completions.create(model="x", messages=history)
    assert call.function.arguments == broken and first.choices[0].finish_reason == "tool_calls"
    assert second.choices[0].message.content == 'saw call_x: bad "arguments"'
    assert json.loads(second.choices[0].message.tool_calls[0].function.arguments) == {"command": 'echo bad "arguments"'}


def test_script_exhausted_is_an_explicit_recorded_error(sock_dir: Path) -> None:
    script = write_script(sock_dir, [{"content": "only one"}])
    calls = Calls()
    with gateway(sock_dir, calls) as gw:
        client = agent(gw, gw.open_session("downstream", f"scripted:{script}"), retries=2)
        client.chat.completions.create(model="x", messages=USER)
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="x", messages=USER)
    assert "exhausted" in e.value.message and e.value.body["type"] == "script_exhausted"
    assert [(c["status"], c["attempts"]) for c in calls] == [("ok", 1), ("error", 1)]
    assert "exhausted" in calls[1]["response_json"]


def test_concurrent_sessions_each_replay_the_script(sock_dir: Path) -> None:
    script = write_script(sock_dir, [{"content": "first", "delay_s": 0.2}, {"content": "second"}])
    results: dict[int, list[str]] = {}
    with gateway(sock_dir) as gw:
        tokens = [gw.open_session("downstream", f"scripted:{script}", task_id=f"t{i}") for i in range(4)]

        def run(i: int) -> None:
            client = agent(gw, tokens[i])
            results[i] = [client.chat.completions.create(model="x", messages=USER).choices[0].message.content
                          for _ in range(2)]
        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert results == {i: ["first", "second"] for i in range(4)}


def _raw(sock: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(data)
        return s.recv(65536)


def test_garbage_requests_get_400_and_the_gateway_survives(sock_dir: Path) -> None:
    script = write_script(sock_dir, {"rules": [{"match": ".", "content": "ok"}]})
    with gateway(sock_dir) as gw:
        token = gw.open_session("downstream", f"scripted:{script}")
        assert _raw(gw.socket_path, b"\x00\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
        bad_json = b"not json"
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Length: {len(bad_json)}\r\n\r\n").encode()
        assert _raw(gw.socket_path, head + bad_json).startswith(b"HTTP/1.1 400")
        no_length = f"POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        assert _raw(gw.socket_path, no_length).startswith(b"HTTP/1.1 411")
        client = agent(gw, token)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="x", messages=[])
        assert client.chat.completions.create(model="x", messages=USER).choices[0].message.content == "ok"


def test_agent_never_sees_the_real_key(sock_dir: Path) -> None:
    real = "sk-real-SECRET-0123456789"
    steps = [{"content": "ok"}, {"fault": 401, "message": f"Incorrect API key provided: {real}"}]
    seen: list[str] = []
    with ScriptedServer(write_script(sock_dir, steps)) as upstream, \
            gateway(sock_dir, env={"DEEPSEEK_API_KEY": real}, providers=deepseek_at(sock_dir, upstream.base_url)) as gw:
        token = gw.open_session("downstream", "deepseek-chat")
        env = gw.agent_env(token, "/run/hgm/gateway.sock")
        seen += list(env.values())
        http = httpx.Client(transport=httpx.HTTPTransport(uds=str(gw.socket_path)), base_url="http://hgm-gateway")
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(3):  # ok, upstream 401 (key rejected), refused
            r = http.post("/v1/chat/completions", json={"model": "x", "messages": USER}, headers=auth)
            seen += [r.text, *(f"{k}: {v}" for k, v in r.headers.items())]
        r = http.get("/v1/models", headers=auth)
        seen += [r.text, *(f"{k}: {v}" for k, v in r.headers.items())]
        usage = gw.session_usage(token)
        assert upstream.requests[0]["headers"]["authorization"] == f"Bearer {real}"
    assert token != real and real not in token
    assert env == {"HGM_LLM_SOCKET": "/run/hgm/gateway.sock", "HGM_LLM_BASE_URL": GATEWAY_BASE_URL,
                   "OPENAI_BASE_URL": GATEWAY_BASE_URL, "OPENAI_API_KEY": token}
    assert [text for text in seen if real in text or "SECRET" in text] == []
    assert usage.upstream_failed and "refused the harness's account" in usage.failure


def test_with_the_real_run_store(sock_dir: Path) -> None:
    from hgm.config import HGMConfig
    from hgm.store import RunStore

    store = RunStore.create(sock_dir / "run", HGMConfig())
    node = store.add_node(None, None, "root")
    script = write_script(
        sock_dir,
        {
            "price": {"input": 2.0, "output": 4.0},
            "responses": [{"fault": 503}, {"content": "a", "usage": {"prompt_tokens": 100, "completion_tokens": 50}}],
        },
    )
    with gateway(sock_dir, store.llm.record) as gw:
        token = gw.open_session("downstream", f"scripted:{script}", node_id=node, task_id="go__x")
        agent(gw, token).chat.completions.create(model="x", messages=USER, temperature=0.5)
        gw.close_session(token)
        sent = gw.scripted_server(f"scripted:{script}").requests[-1]["body"]
    [(call_id,)] = store._read("SELECT id FROM llm_calls")
    assert store.llm.request(call_id) == sent  # what went upstream, rebuilt from the store
    usage = store.llm.usage(node_id=node)
    assert (usage.prompt_tokens, usage.completion_tokens) == (100, 50)
    assert usage.cost_usd == pytest.approx((100 * 2.0 + 50 * 4.0) / 1e6)


def test_long_socket_path_falls_back_and_harness_client_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    script = write_script(tmp_path, {"rules": [{"match": "(\\w+) please", "content": "did {{match1}}"}]})
    calls = Calls()
    with Gateway(deep / "gw.sock", llm=LLMConfig(**FAST), recorder=calls, env={}) as gw:
        assert len(str(gw.socket_path)) <= 100 and gw.socket_path.is_socket()
        token = gw.open_session("diagnose", f"scripted:{script}", node_id=1)
        reply = agent(gw, token).chat.completions.create(
            model="x", messages=[{"role": "user", "content": "diagnose please"}]
        )
    assert reply.choices[0].message.content == "did diagnose"
    assert calls[0]["role"] == "diagnose" and not gw.socket_path.exists()
    assert not gw.socket_path.parent.exists(), "the fallback directory under /tmp is removed too"


def test_shipped_example_script_drives_an_agent_loop(sock_dir: Path) -> None:
    example = Path(__file__).parent.parent / "hgm" / "llm" / "examples" / "bash_agent.yaml"
    with gateway(sock_dir) as gw:
        client = agent(gw, gw.open_session("downstream", f"scripted:{example}"))
        messages: list[Any] = list(USER)
        for _ in range(3):
            message = client.chat.completions.create(model="x", messages=messages).choices[0].message
            messages.append(message.model_dump(exclude_none=True))
            messages += [
                {"role": "tool", "tool_call_id": c.id, "content": "listing done"} for c in message.tool_calls or []
            ]
        traceback = messages + [{"role": "user", "content": "Traceback (most recent call last): boom"}]
        rule = client.chat.completions.create(model="x", messages=traceback).choices[0].message.content
        with pytest.raises(openai.BadRequestError, match="exhausted"):
            client.chat.completions.create(model="x", messages=messages)
    assert [json.loads(m["tool_calls"][0]["function"]["arguments"])["command"][:5] for m in messages
            if m.get("tool_calls")] == ["ls -l", "print"]
    assert messages[-1]["content"] == "Done. The last tool said: listing done"
    assert rule == "The command failed; I stop here."


def test_streaming_clients_get_the_answer_as_chunks(sock_dir: Path) -> None:
    script = write_script(sock_dir, [
        {"content": "let me run", "tool_calls": [{"name": "bash", "arguments": {"command": "ls"}, "id": "c9"}],
         "usage": {"prompt_tokens": 10, "completion_tokens": 7}}, {"fault": 400, "message": "too long"}])
    calls = Calls()
    with gateway(sock_dir, calls) as gw:
        client = agent(gw, gw.open_session("downstream", f"scripted:{script}"))
        chunks = list(client.chat.completions.create(model="x", messages=USER, stream=True,
                                                     stream_options={"include_usage": True}))
        with pytest.raises(openai.BadRequestError, match="too long"):  # errors stay plain JSON
            client.chat.completions.create(model="x", messages=USER, stream=True)
        received = gw.scripted_server(f"scripted:{script}").requests
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    [call] = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert text == "let me run" and (call.id, call.function.name, call.function.arguments) == (
        "c9",
        "bash",
        '{"command": "ls"}',
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage.prompt_tokens == 10 and chunks[-1].usage.completion_tokens == 7
    assert all("stream" not in r["body"] and "stream_options" not in r["body"] for r in received)
    assert [c["status"] for c in calls] == ["ok", "error"]


def test_timeouts_and_dropped_connections_are_retried(sock_dir: Path) -> None:
    script = write_script(
        sock_dir, [{"delay_s": 1.0, "content": "too late"}, {"fault": "disconnect"}, {"content": "made it"}]
    )
    calls = Calls()
    with gateway(sock_dir, calls, request_timeout_s=0.3) as gw:
        reply = agent(gw, gw.open_session("downstream", f"scripted:{script}")).chat.completions.create(
            model="x", messages=USER
        )
    assert reply.choices[0].message.content == "made it"
    assert [(c["status"], c["attempts"]) for c in calls] == [("ok", 3)]


@pytest.mark.parametrize(("fault", "infra"), [(400, False), (402, True), (404, True), (422, False)])
def test_upstream_4xx_is_the_agents_unless_it_is_the_harness_account(sock_dir: Path, fault: int, infra: bool) -> None:
    script = write_script(sock_dir, [{"fault": fault, "message": f"upstream says {fault}"}])
    with gateway(sock_dir) as gw:
        token = gw.open_session("downstream", f"scripted:{script}")
        with pytest.raises(openai.APIStatusError) as e:
            agent(gw, token).chat.completions.create(model="x", messages=USER)
        usage = gw.session_usage(token)
    assert e.value.status_code == (502 if infra else fault) and f"upstream says {fault}" in e.value.message
    assert usage.upstream_failed is infra


def test_context_length_errors_are_the_agents_once_never_retried(sock_dir: Path) -> None:
    script = write_script(sock_dir, {"context_window": 60, "rules": [{"match": ".", "content": "ok"}]})
    too_long = [{"role": "user", "content": "x" * 400}]
    calls = Calls()
    with gateway(sock_dir, calls) as gw:
        token = gw.open_session("downstream", f"scripted:{script}")
        client = agent(gw, token, retries=2)
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="x", messages=too_long)
        assert e.value.code == "context_length_exceeded" and "maximum context length is 60" in e.value.message
        assert client.chat.completions.create(model="x", messages=USER).choices[0].message.content == "ok"
        usage = gw.session_usage(token)
        received = len(gw.scripted_server(f"scripted:{script}").requests)
    assert [(c["status"], c["attempts"]) for c in calls] == [("context_length", 1), ("ok", 1)]
    assert received == 2 and not usage.upstream_failed and not usage.over_budget


def test_a_context_length_error_sent_as_a_5xx_is_not_retried_either(sock_dir: Path) -> None:
    script = write_script(sock_dir, [{"fault": 500, "message": "prompt is too long: 200000 tokens > 131072 maximum"},
                                     {"content": "never asked"}])
    calls = Calls()
    with gateway(sock_dir, calls) as gw:
        token = gw.open_session("downstream", f"scripted:{script}")
        with pytest.raises(openai.BadRequestError, match="prompt is too long"):
            agent(gw, token).chat.completions.create(model="x", messages=USER)
        assert not gw.session_usage(token).upstream_failed
    assert [(c["status"], c["attempts"]) for c in calls] == [("context_length", 1)]


def test_a_replayed_cassette_needs_no_api_key(sock_dir: Path) -> None:
    from hgm.errors import UserError
    from hgm.llm.providers import check_llm

    script = write_script(sock_dir, [{"content": "recorded answer"}])
    cassette = sock_dir / "tape.jsonl"
    with ScriptedServer(script) as upstream:
        table = deepseek_at(sock_dir, upstream.base_url)
        with gateway(sock_dir, env={"DEEPSEEK_API_KEY": "sk-real"}, providers=table, cassette=cassette) as gw:
            agent(gw, gw.open_session("downstream", "deepseek-chat")).chat.completions.create(model="x", messages=USER)
    replay = LLMConfig(cassette=cassette, cassette_mode="replay")
    assert [r.name for r in check_llm(replay, ["deepseek-chat"], env={})] == ["deepseek-chat"]
    with pytest.raises(UserError, match="DEEPSEEK_API_KEY"):
        check_llm(LLMConfig(), ["deepseek-chat"], env={})
    with gateway(sock_dir, env={}, providers=table, cassette=cassette, cassette_mode="replay") as gw:  # no key
        reply = agent(gw, gw.open_session("downstream", "deepseek-chat")).chat.completions.create(
            model="x", messages=USER
        )
    assert reply.choices[0].message.content == "recorded answer"
