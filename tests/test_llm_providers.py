"""Provider layer at the protocol level: real HTTP against the scripted OpenAI-wire server,
asserting what the server received and what we parsed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from hgm.errors import UserError
from hgm.llm.pricing import Price, TokenUsage, cost_usd, usage_from_response
from hgm.llm.providers import ProviderTable, adapt_request, check_models
from hgm.llm.scripted import ScriptedServer
from hgm.llm.upstream import ProviderClient

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "run a command",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    }
]


def script(tmp_path: Path, data: object, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def table_pointing(tmp_path: Path, url: str) -> ProviderTable:
    """The packaged table with deepseek and openai pointed at a local server (user-file override)."""
    user = tmp_path / "providers.yaml"
    user.write_text(yaml.safe_dump({"providers": {"deepseek": {"base_url": url, "key_env": "DEEPSEEK_API_KEY"},
                                                  "openai": {"base_url": url, "key_env": "OPENAI_API_KEY"}}}))
    return ProviderTable.load(user)


def test_resolution_of_known_forms(tmp_path: Path) -> None:
    table = ProviderTable.load()
    ds = table.resolve("deepseek-chat")
    assert (ds.base_url, ds.key_env, ds.upstream_model, ds.api) == (
        "https://api.deepseek.com",
        "DEEPSEEK_API_KEY",
        "deepseek-chat",
        "chat",
    )
    assert ds.price is not None and ds.price.cached_input is not None
    assert table.resolve("deepseek-reasoner").key_env == "DEEPSEEK_API_KEY"
    for name in ("gpt-5", "gpt-5-mini", "o3", "o4-mini"):
        r = table.resolve(name)
        assert (r.base_url, r.key_env, r.api) == ("https://api.openai.com/v1", "OPENAI_API_KEY", "reasoning")
    orr = table.resolve("openrouter/qwen/qwen3-coder")
    assert (orr.upstream_model, orr.key_env, orr.base_url, orr.price) == (
        "qwen/qwen3-coder", "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1", None)
    ol = table.resolve("ollama/llama3")
    assert (ol.upstream_model, ol.key_env) == ("llama3", None)
    assert ol.api_key({}) is None
    custom = table.resolve("qwen2.5-coder@http://localhost:8000/v1")
    assert (custom.upstream_model, custom.base_url, custom.key_env, custom.key_required) == (
        "qwen2.5-coder", "http://localhost:8000/v1", "HGM_API_KEY", False)
    s = script(tmp_path, [{"content": "hi"}])
    assert table.resolve(f"scripted:{s}").script == s.resolve()
    with pytest.raises(UserError, match="unknown model 'nonsense'"):
        table.resolve("nonsense")
    with pytest.raises(UserError, match="not found"):
        table.resolve(f"scripted:{tmp_path / 'missing.yaml'}")


def test_check_models_names_every_missing_key_variable() -> None:
    with pytest.raises(UserError) as e:
        check_models(["deepseek-chat", "gpt-5-mini", "ollama/llama3"], env={})
    assert "DEEPSEEK_API_KEY" in str(e.value) and "OPENAI_API_KEY" in str(e.value)
    routes = check_models(["deepseek-chat", "ollama/llama3"], env={"DEEPSEEK_API_KEY": "k"})
    assert [r.name for r in routes] == ["deepseek-chat", "ollama/llama3"]


def test_user_table_overrides_and_adds(tmp_path: Path) -> None:
    user = tmp_path / "p.yaml"
    user.write_text(yaml.safe_dump({"models": {"my-model": {"provider": "deepseek", "upstream": "deepseek-chat",
                                                            "price": {"input": 1, "output": 2}}}}))
    table = ProviderTable.load(user)
    r = table.resolve("my-model")
    assert (r.upstream_model, r.base_url, r.price) == ("deepseek-chat", "https://api.deepseek.com", Price(1, 2))
    assert table.resolve("deepseek-chat").price is not None  # packaged entries stay
    with pytest.raises(UserError, match="provider table not found"):
        ProviderTable.load(tmp_path / "nope.yaml")


def test_deepseek_chat_wire_format(tmp_path: Path) -> None:
    steps = {"usage_style": "deepseek", "responses": [{
        "content": "calling", "tool_calls": [{"name": "bash", "arguments": {"command": "ls"}, "id": "call_a"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "cached_tokens": 800}}]}
    with ScriptedServer(script(tmp_path, steps)) as server:
        route = table_pointing(tmp_path, server.base_url).resolve("deepseek-chat")
        body = adapt_request({"model": "whatever", "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS,
                              "max_tokens": 512, "temperature": 0.2, "thinking": {"type": "disabled"}}, route)
        reply = ProviderClient(route, route.api_key({"DEEPSEEK_API_KEY": "sk-ds-real"}), 10).send(body)
        got = server.requests[0]
    assert got["path"] == "/v1/chat/completions"
    assert got["headers"]["authorization"] == "Bearer sk-ds-real"
    sent = got["body"]
    assert sent["model"] == "deepseek-chat" and sent["max_tokens"] == 512 and sent["temperature"] == 0.2
    assert sent["tools"] == TOOLS and sent["thinking"] == {"type": "disabled"}  # extra fields reach the body
    assert reply.ok and reply.status == 200
    call = reply.body["choices"][0]["message"]["tool_calls"][0]
    assert (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "call_a",
        "bash",
        {"command": "ls"},
    )
    usage = usage_from_response(reply.body)
    assert usage == TokenUsage(1000, 100, 800, 0)
    assert reply.body["usage"]["prompt_cache_miss_tokens"] == 200
    assert cost_usd(usage, route.price) == pytest.approx((200 * 0.28 + 800 * 0.028 + 100 * 0.42) / 1e6)


def test_openai_reasoning_model_wire_format(tmp_path: Path) -> None:
    steps = [{"content": "ok", "usage": {"prompt_tokens": 2000, "completion_tokens": 50, "cached_tokens": 1024}}]
    with ScriptedServer(script(tmp_path, steps)) as server:
        route = table_pointing(tmp_path, server.base_url).resolve("gpt-5-mini")
        body = adapt_request({"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 300,
                              "temperature": 0, "top_p": 0.9, "tools": TOOLS, "reasoning_effort": "low"}, route)
        reply = ProviderClient(route, "sk-openai-real", 10).send(body)
        got = server.requests[0]
    sent = got["body"]
    assert got["headers"]["authorization"] == "Bearer sk-openai-real"
    assert sent["model"] == "gpt-5-mini" and sent["max_completion_tokens"] == 300
    assert "max_tokens" not in sent and "temperature" not in sent and "top_p" not in sent
    assert sent["reasoning_effort"] == "low" and sent["tools"] == TOOLS
    usage = usage_from_response(reply.body)
    assert reply.body["usage"]["prompt_tokens_details"]["cached_tokens"] == 1024
    assert usage.cached_tokens == 1024
    assert cost_usd(usage, route.price) == pytest.approx((976 * 0.25 + 1024 * 0.025 + 50 * 2.0) / 1e6)


def test_deepseek_reasoner_reasoning_content_round_trip(tmp_path: Path) -> None:
    steps = {"usage_style": "deepseek", "responses": [{"reasoning_content": "Let me think.", "content": "42"}]}
    history = [{"role": "user", "content": "q"},
               {"role": "assistant", "content": None, "reasoning_content": "earlier thought",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "c1", "content": "out"}]
    with ScriptedServer(script(tmp_path, steps)) as server:
        route = table_pointing(tmp_path, server.base_url).resolve("deepseek-reasoner")
        reply = ProviderClient(route, "k", 10).send(adapt_request({"messages": history}, route))
        sent = server.requests[0]["body"]
    assert sent["messages"] == history  # thinking-mode tool turns need reasoning_content passed back
    message = reply.body["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == ("Let me think.", "42")
    assert usage_from_response(reply.body).reasoning_tokens == len("Let me think.") // 4


@pytest.mark.parametrize(("fault", "retryable"),
                         [(400, False), (401, False), (404, False), (429, True), (500, True), (503, True)])
def test_error_bodies(tmp_path: Path, fault: int, retryable: bool) -> None:
    steps = [{"fault": fault, "message": f"boom {fault}", "retry_after": 3}]
    with ScriptedServer(script(tmp_path, steps)) as server:
        route = ProviderTable.load().resolve(f"m@{server.base_url}")
        reply = ProviderClient(route, None, 10).send({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert not reply.ok and reply.status == fault and reply.retryable is retryable
    assert reply.body["error"]["message"] == f"boom {fault}"
    assert reply.retry_after_s == 3.0


def test_connection_errors_and_timeouts_are_retryable(tmp_path: Path) -> None:
    steps = [{"fault": "disconnect"}, {"delay_s": 1.0, "content": "late"}]
    with ScriptedServer(script(tmp_path, steps)) as server:
        route = ProviderTable.load().resolve(f"m@{server.base_url}")
        client = ProviderClient(route, None, 0.3)
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        dropped, late = client.send(body), client.send(body)
    assert (dropped.status, dropped.retryable) == (0, True) and "connection" in dropped.error
    assert (late.status, late.retryable) == (0, True) and "timeout" in late.error


def test_keyless_servers_get_no_authorization_and_generic_key_is_used(tmp_path: Path) -> None:
    steps = {"rules": [{"match": ".", "content": "ok"}]}
    with ScriptedServer(script(tmp_path, steps)) as server:
        route = ProviderTable.load().resolve(f"m@{server.base_url}")
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        ProviderClient(route, route.api_key({"OPENAI_API_KEY": "sk-must-not-leak"}), 5).send(body)
        ProviderClient(route, route.api_key({"HGM_API_KEY": "local-key"}), 5).send(body)
        first, second = server.requests
    assert "authorization" not in first["headers"]
    assert second["headers"]["authorization"] == "Bearer local-key"


def test_pricing_unknown_is_none_not_zero() -> None:
    usage = TokenUsage(100, 10, 50)
    assert cost_usd(usage, None) is None
    assert cost_usd(usage, Price(1.0, 2.0)) is None  # cached tokens with no cache price
    assert cost_usd(TokenUsage(100, 10), Price(1.0, 2.0)) == pytest.approx(120 / 1e6)
    assert usage_from_response({"choices": []}) == TokenUsage()


def test_base_url_override_and_bad_scripts(tmp_path: Path) -> None:
    r = ProviderTable.load().resolve("deepseek-chat", base_url="http://localhost:9000/v1/")
    assert (r.base_url, r.upstream_model, r.key_env, r.key_required) == (
        "http://localhost:9000/v1",
        "deepseek-chat",
        "DEEPSEEK_API_KEY",
        False,
    )
    for bad, why in ([{"conten": "typo"}], "unknown keys"), ({"rules": [{"content": "x"}]}, "needs a match"), \
                    ({"responses": [], "price": {"input": 1}}, "price must"), \
                    ([{"fault": "slow"}], "fault must"), ({"rules": [{"match": "("}]}, "not a valid regex"), \
                    ([{"tool_calls": [{"arguments": "{}"}]}], "with a name"):
        with pytest.raises(UserError, match=why):
            ScriptedServer(script(tmp_path, bad))


def test_scripted_server_standalone_repeat_and_exhaustion(tmp_path: Path) -> None:
    path = script(tmp_path, [{"fault": 503, "repeat": 2}, {"content": "up"}])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "hgm.llm.scripted", str(path), "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert "serving" in proc.stdout.readline()
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        deadline = time.monotonic() + 10
        statuses = []
        while len(statuses) < 4 and time.monotonic() < deadline:
            statuses.append(httpx.post(url, json=body).status_code)
        last = httpx.post(url, json=body, headers={"X-HGM-Session": "other"})
    finally:
        proc.terminate()
        proc.wait(10)
    assert statuses == [503, 503, 200, 400]
    assert last.status_code == 503  # another session starts at the top of the script


def test_cli_check_names_the_missing_variable() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEEPSEEK_API_KEY"}
    missing = subprocess.run(["hgm", "llm", "check", "deepseek-chat"], env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "DEEPSEEK_API_KEY" in missing.stderr and "Traceback" not in missing.stderr


def test_scripted_prefix_cache_reports_shared_prefix_as_cached(tmp_path: Path) -> None:
    steps = {"cache": "prefix", "usage_style": "deepseek", "rules": [{"match": ".", "content": "ok"}]}
    long = [{"role": "system", "content": "x" * 4000}, {"role": "user", "content": "first"}]
    with ScriptedServer(script(tmp_path, steps)) as server:
        client = ProviderClient(ProviderTable.load().resolve(f"m@{server.base_url}"), None, 5)
        first = usage_from_response(client.send({"model": "m", "messages": long}).body)
        second = usage_from_response(
            client.send({"model": "m", "messages": long + [{"role": "user", "content": "more"}]}).body
        )
    assert first.cached_tokens == 0
    assert 0 < second.cached_tokens <= second.prompt_tokens and second.cached_tokens % 64 == 0
    assert second.cached_tokens >= 960  # ~4000 shared characters


def test_spend_bounds_name_unpriced_models_and_the_cap_that_bounds_them(tmp_path: Path) -> None:
    from hgm.config import BudgetConfig
    from hgm.llm.providers import spend_bounds

    table = ProviderTable.load()
    routes = [table.resolve("deepseek-chat"), table.resolve("ollama/llama3")]
    notes, warnings = spend_bounds(routes, BudgetConfig(max_usd_run=20))
    assert notes == ["LLM spend cap: $20.0 (budget.max_usd_run, known prices)"]
    assert len(warnings) == 1 and "ollama/llama3" in warnings[0] and "deepseek-chat" not in warnings[0]
    assert "nothing bounds what they spend" in warnings[0] and "--set budget.max_tokens_run=" in warnings[0]
    notes, warnings = spend_bounds(routes, BudgetConfig(max_usd_run=20, max_tokens_run=3_000_000))
    assert warnings == [] and notes[0] == ("LLM spend cap: $20.0 (budget.max_usd_run, known prices) and "
                                           "3,000,000 tokens (budget.max_tokens_run)")
    assert notes[1] == "models without a known price: ollama/llama3; the run token cap of 3,000,000 tokens bounds them"
    assert spend_bounds(routes[:1], BudgetConfig()) == (["LLM spend cap: none (set one with --max-usd)"], [])


def test_context_windows_and_output_caps_come_from_the_table(tmp_path: Path) -> None:
    table = ProviderTable.load()
    chat, reasoner = table.resolve("deepseek-chat"), table.resolve("deepseek-reasoner")
    assert (chat.context_window, chat.max_output) == (128000, 4096)
    assert (reasoner.context_window, reasoner.max_output) == (128000, 32768)
    assert all(table.resolve(name).context_window for name in table.models)
    assert table.resolve("ollama/llama3").context_window is None
    s = script(tmp_path, {"context_window": 6000, "max_output": 100, "responses": [{"content": "hi"}]})
    assert (table.resolve(f"scripted:{s}").context_window, table.resolve(f"scripted:{s}").max_output) == (6000, 100)
    with pytest.raises(UserError, match="context_window must be a positive number"):
        table.resolve(f"scripted:{script(tmp_path, {'context_window': 'big', 'responses': []}, 'bad.yaml')}")


def test_request_bound_covers_the_prompt_and_the_most_output_it_may_get() -> None:
    from hgm.llm.pricing import DEFAULT_MAX_OUTPUT, Bound, prompt_tokens_bound, request_bound

    request = {"messages": [{"role": "user", "content": "x" * 3000}], "tools": TOOLS}
    prompt = prompt_tokens_bound(request)
    assert 1000 < prompt < 1100  # 3 bytes a token: above the ~4 bytes a token of real tokenizers
    price = Price(input=1.0, output=2.0)
    assert request_bound({**request, "max_tokens": 100}, price, 4096, 128000).tokens == prompt + 100
    assert request_bound({**request, "max_completion_tokens": 50, "n": 3}, None, 4096, None).tokens == prompt + 150
    bound = request_bound(request, price, 4096, 128000)  # no max_tokens: the model's default cap
    assert bound.tokens == prompt + 4096 and bound.usd == pytest.approx((prompt * 1.0 + 4096 * 2.0) / 1e6)
    assert request_bound(request, None, None, 8000).tokens == 8000  # what the window leaves
    assert request_bound(request, None, None, None) == Bound(prompt + DEFAULT_MAX_OUTPUT, None)
