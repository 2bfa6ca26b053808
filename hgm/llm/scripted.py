"""The scripted LLM: an OpenAI-compatible HTTP server that answers from a script file.

Tests (and dry runs) drive the real agent -> gateway -> provider client -> HTTP path with it.
Use it as a model name (`scripted:PATH`, the gateway starts the server) or standalone:
`python -m hgm.llm.scripted SCRIPT --port 8000` / `hgm llm serve-scripted SCRIPT --port 8000`.

Script format (YAML or JSON). Either a plain list of steps (= `responses`) or a mapping:

    model: scripted-model          # what responses report as `model` (default "scripted")
    price: {input: 1.0, cached_input: 0.1, output: 2.0}   # optional, USD per M tokens (else cost unknown)
    usage_style: openai            # openai: usage.prompt_tokens_details.cached_tokens
                                   # deepseek: usage.prompt_cache_hit_tokens / _miss_tokens
    cache: prefix                  # optional: report the prefix shared with the session's previous
                                   # request as cached (64-token blocks), like provider prompt caches
    context_window: 8000           # optional: tokens a request may hold; a longer prompt (estimated as
                                   # below) gets HTTP 400 context_length_exceeded, like OpenAI/DeepSeek
    max_output: 1000               # optional: the model's default answer cap (the gateway reserves it)
    rules:                         # tried first, in order; a matching rule answers and is NOT consumed
      - match: "Traceback"         # regex searched in the last user/tool message (on: last, default)
        on: last                   # or `any`: searched in every message's content
        content: "I see an error: {{match}}"
    responses:                     # then one step per request, in order (each session has its own cursor)
      - content: "Let me look."
        tool_calls:
          - name: bash
            arguments: {command: "ls"}          # a mapping is sent as JSON text
      - tool_calls:
          - {name: edit, arguments: '{"path": "a.py",'}   # a string is sent verbatim (malformed JSON on purpose)
      - fault: 429                  # HTTP error with an OpenAI-style body; consumes the step
        retry_after: 0
      - fault: 500
        repeat: 3                   # this step serves 3 requests
      - fault: disconnect           # close the connection without answering
      - delay_s: 2.5                # answer late (to hit client timeouts)
        content: "slow answer"
      - reasoning_content: "thinking..."      # DeepSeek-reasoner style field
        content: "Done. The last tool said: {{last_message}}"
        usage: {prompt_tokens: 1200, completion_tokens: 30, cached_tokens: 1024}

Step keys: content, tool_calls (name, arguments, optional id), reasoning_content, finish_reason,
usage (overrides the estimate: about 4 characters per token), delay_s, fault (HTTP status or
`disconnect`), message (fault text), retry_after, repeat.
Templates `{{name}}` in strings: last_message (content of the last user/tool message),
last_tool_call_id (id of the last tool call the assistant made in the request), n (1-based
request number in this session), model (requested model), match / match1.. (regex of the rule).

Sessions: the cursor over `responses` is kept per value of the `X-HGM-Session` request header
(the gateway sends its session id; other clients share the cursor "default"), so concurrent
agent sessions each replay the script from its start. Use one script per role when roles
need different answers (`llm.downstream: scripted:a.yaml`, `llm.self_improve: scripted:b.yaml`).
Running out of responses is an explicit, non-retryable HTTP 400 (`type: script_exhausted`),
never a default answer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from hgm.errors import UserError

SESSION_HEADER = "X-HGM-Session"
STEP_KEYS = {"content", "tool_calls", "reasoning_content", "finish_reason", "usage", "delay_s", "fault",
             "message", "retry_after", "repeat", "match", "on"}


def load_script(path: Path) -> dict[str, Any]:
    """Parse and check a script file; a bad script is a UserError saying what is wrong."""
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise UserError(f"cannot read LLM script {path}: {e}") from None
    if isinstance(data, list):
        data = {"responses": data}
    if not isinstance(data, dict):
        raise UserError(f"LLM script {path}: expected a list of steps or a mapping with responses:/rules:")
    for section in ("responses", "rules"):
        steps = data.setdefault(section, [])
        if not isinstance(steps, list):
            raise UserError(f"LLM script {path}: {section} must be a list")
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                raise UserError(f"LLM script {path}: {section}[{i}] must be a mapping")
            unknown = set(step) - STEP_KEYS
            if unknown:
                raise UserError(f"LLM script {path}: {section}[{i}] has unknown keys {sorted(unknown)} "
                                f"(allowed: {sorted(STEP_KEYS)})")
            where = f"LLM script {path}: {section}[{i}]"
            if section == "rules":
                if "match" not in step:
                    raise UserError(f"{where} needs a match: regex")
                try:
                    re.compile(step["match"])
                except (re.error, TypeError) as e:
                    raise UserError(f"{where}: match is not a valid regex: {e}") from None
            fault = step.get("fault")
            if fault is not None and fault != "disconnect" and not (isinstance(fault, int) and 400 <= fault <= 599):
                raise UserError(f"{where}: fault must be an HTTP error status (400-599) or disconnect, not {fault!r}")
            calls = step.get("tool_calls") or []
            if not isinstance(calls, list) or not all(isinstance(c, dict) and "name" in c for c in calls):
                raise UserError(f"{where}: tool_calls must be a list of mappings with a name (and arguments)")
    price = data.get("price")
    if price is not None and (not isinstance(price, dict) or set(price) - {"input", "cached_input", "output"}
                              or not {"input", "output"} <= set(price)):
        raise UserError(f"LLM script {path}: price must be a mapping with input, output and optional cached_input")
    if data.get("cache") not in (None, "prefix"):
        raise UserError(f"LLM script {path}: cache must be prefix (or absent)")
    if data.get("usage_style", "openai") not in ("openai", "deepseek"):
        raise UserError(f"LLM script {path}: usage_style must be openai or deepseek")
    for key in ("context_window", "max_output"):
        if key in data and not (isinstance(data[key], int) and data[key] > 0):
            raise UserError(f"LLM script {path}: {key} must be a positive number of tokens")
    return data


def prompt_tokens_estimate(body: dict[str, Any]) -> int:
    """The scripted LLM's token count of a request's prompt: about 4 characters per token."""
    return max(1, len(json.dumps(body.get("messages", [])) + json.dumps(body.get("tools", []))) // 4)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class ScriptError(Exception):
    """A request the script cannot answer (exhausted, bad template): becomes an HTTP 400."""

    def __init__(self, message: str, kind: str = "script_error"):
        super().__init__(message)
        self.kind = kind


class ScriptedLLM:
    """The answering logic, separate from HTTP. Thread-safe."""

    def __init__(self, script_path: Path):
        self.path = Path(script_path)
        self.script = load_script(self.path)
        self._lock = threading.Lock()
        self._cursor: dict[str, tuple[int, int]] = {}  # session -> (step index, uses of that step)
        self._calls: dict[str, int] = {}
        self._last_prompt: dict[str, str] = {}  # session -> previous prompt text (cache: prefix)

    def _next_step(self, session: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], int]:
        messages = body.get("messages") or []
        with self._lock:
            n = self._calls[session] = self._calls.get(session, 0) + 1
            for rule in self.script["rules"]:
                on_all = rule.get("on", "last") == "any"
                texts = [_text(m.get("content")) for m in messages if isinstance(m, dict)]
                if not on_all:
                    texts = [_text(m.get("content")) for m in messages[-1:] if isinstance(m, dict)
                             and m.get("role") in ("user", "tool")]
                for text in texts:
                    found = re.search(rule["match"], text)
                    if found:
                        groups = {f"match{i}": g or "" for i, g in enumerate(found.groups(), 1)}
                        return rule, {"match": found.group(0), **groups}, n
            index, used = self._cursor.get(session, (0, 0))
            steps = self.script["responses"]
            if index >= len(steps):
                raise ScriptError(
                    f"scripted LLM: script {self.path} is exhausted: all {len(steps)} responses were used "
                    f"in session {session!r} (request {n}) and no rule matched; add responses or rules",
                    "script_exhausted")
            step = steps[index]
            used += 1
            self._cursor[session] = (index + 1, 0) if used >= int(step.get("repeat", 1)) else (index, used)
            return step, {}, n

    def answer(self, body: dict[str, Any], session: str = "default") -> tuple[dict[str, Any], dict[str, Any]]:
        """(step, response-or-error info). Raises ScriptError when the script cannot answer."""
        step, match_vars, n = self._next_step(session, body)
        messages = [m for m in (body.get("messages") or []) if isinstance(m, dict)]
        last = next((m for m in reversed(messages) if m.get("role") in ("user", "tool")), {})
        last_call = ""
        for m in reversed(messages):
            calls = m.get("tool_calls") if m.get("role") == "assistant" else None
            if calls:
                last_call = str(calls[-1].get("id", ""))
                break
        variables = {"last_message": _text(last.get("content")), "last_tool_call_id": last_call, "n": str(n),
                     "model": str(body.get("model", "")), **match_vars}
        return step, self._response(step, variables, body, session, n)

    def _render(self, value: Any, variables: dict[str, str]) -> Any:
        if isinstance(value, str):
            def sub(m: re.Match[str]) -> str:
                if m.group(1) not in variables:
                    raise ScriptError(f"scripted LLM: unknown template variable {{{{{m.group(1)}}}}} in {self.path} "
                                      f"(known: {', '.join(sorted(variables))})")
                return variables[m.group(1)]
            return re.sub(r"\{\{\s*(\w+)\s*\}\}", sub, value)
        if isinstance(value, dict):
            return {k: self._render(v, variables) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render(v, variables) for v in value]
        return value

    def _response(self, step: dict[str, Any], variables: dict[str, str], body: dict[str, Any],
                  session: str, n: int) -> dict[str, Any]:
        if "fault" in step:
            return {}
        message: dict[str, Any] = {"role": "assistant", "content": self._render(step.get("content"), variables)}
        if "reasoning_content" in step:
            message["reasoning_content"] = self._render(step["reasoning_content"], variables)
        calls = []
        for i, call in enumerate(step.get("tool_calls") or []):
            args = self._render(call.get("arguments", {}), variables)  # before JSON-encoding: values stay valid JSON
            calls.append(
                {
                    "id": self._render(call.get("id", f"call_{n}_{i}"), variables),
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": args if isinstance(args, str) else json.dumps(args),
                    },
                }
            )
        if calls:
            message["tool_calls"] = calls
        out_text = (message["content"] or "") + message.get("reasoning_content", "") + "".join(
            c["function"]["arguments"] + c["function"]["name"] for c in calls)
        prompt_text = json.dumps(body.get("messages", [])) + json.dumps(body.get("tools", []))
        given = step.get("usage") or {}
        prompt = int(given.get("prompt_tokens", prompt_tokens_estimate(body)))
        completion = int(given.get("completion_tokens", max(1, len(out_text) // 4)))
        cached = int(given.get("cached_tokens", 0))
        if self.script.get("cache") == "prefix":
            with self._lock:
                previous, self._last_prompt[session] = self._last_prompt.get(session, ""), prompt_text
            shared = len(os.path.commonprefix([previous, prompt_text]))
            cached = given.get("cached_tokens", min(shared // 4 // 64 * 64, prompt))
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}
        reasoning = len(message.get("reasoning_content", "")) // 4
        if self.script.get("usage_style", "openai") == "deepseek":
            usage |= {"prompt_cache_hit_tokens": cached, "prompt_cache_miss_tokens": prompt - cached}
            if reasoning:
                usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        else:
            usage |= {"prompt_tokens_details": {"cached_tokens": cached},
                      "completion_tokens_details": {"reasoning_tokens": reasoning}}
        return {
            "id": f"chatcmpl-scripted-{session}-{n}", "object": "chat.completion", "created": int(time.time()),
            "model": self.script.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": step.get("finish_reason", "tool_calls" if calls else "stop")}],
            "usage": usage,
        }


def error_body(message: str, kind: str, code: str | int | None = None) -> dict[str, Any]:
    """OpenAI-style error JSON."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            model = self.server.llm.script.get("model", "scripted")
            self._send(200, {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "hgm"}]})
        else:
            self._send(404, error_body(f"no route GET {self.path}", "invalid_request_error"))

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            self._send(400, error_body("request body is not JSON", "invalid_request_error"))
            return
        with self.server.log_lock:
            self.server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                         "body": body})
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, error_body(f"no route POST {self.path}", "invalid_request_error"))
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._send(400, error_body("body must be a JSON object with a messages list", "invalid_request_error"))
            return
        if body.get("stream"):
            self._send(400, error_body("the scripted LLM does not stream; send stream: false", "invalid_request_error"))
            return
        window, used = self.server.llm.script.get("context_window"), prompt_tokens_estimate(body)
        if window and used > window:  # OpenAI's wording and code; DeepSeek's message is alike
            self._send(400, error_body(f"This model's maximum context length is {window} tokens. However, your "
                                       f"messages resulted in {used} tokens. Please reduce the length of the "
                                       "messages.", "invalid_request_error", "context_length_exceeded"))
            return
        try:
            step, response = self.server.llm.answer(body, self.headers.get(SESSION_HEADER, "default"))
        except ScriptError as e:
            self._send(400, error_body(str(e), e.kind, e.kind))
            return
        time.sleep(float(step.get("delay_s", 0)))
        fault = step.get("fault")
        if fault == "disconnect":
            self.close_connection = True
            return
        if fault is not None:
            status = int(fault)
            headers = {"Retry-After": str(step["retry_after"])} if "retry_after" in step else {}
            kind = {429: "rate_limit_error", 401: "authentication_error"}.get(
                status, "server_error" if status >= 500 else "invalid_request_error"
            )
            self._send(status, error_body(step.get("message", f"scripted fault {status}"), kind, status), headers)
            return
        self._send(200, response)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up is not news
            super().handle_error(request, client_address)
    llm: ScriptedLLM
    requests: list[dict[str, Any]]
    log_lock: threading.Lock


class ScriptedServer:
    """The scripted LLM on 127.0.0.1:port (0 = any free port), served from a thread."""

    def __init__(self, script_path: Path, port: int = 0, host: str = "127.0.0.1"):
        self.llm = ScriptedLLM(script_path)
        self._server = _Server((host, port), _Handler)
        self._server.llm = self.llm
        self._server.requests = []
        self._server.log_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every POST received: path, headers (lower-case names), body."""
        return self._server.requests

    def start(self) -> ScriptedServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="hgm-scripted-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hgm.llm.scripted", description="Serve an LLM script over HTTP.")
    parser.add_argument("script", type=Path)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    server = ScriptedServer(args.script, args.port, args.host)
    print(f"scripted LLM serving {args.script} at {server.base_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server._server.serve_forever()


if __name__ == "__main__":
    main()
