"""HTTP side of the gateway: a threaded server on a Unix socket and its request handler.

The handler authenticates the session token, validates the body (garbage gets 400, never a
crash) and hands the request to `Gateway.chat`; see hgm/llm/gateway.py for the behaviour.
`stream: true` is served by asking upstream without streaming and sending the finished answer
as server-sent chunks (one delta per choice), so streaming agents work unchanged.
"""

from __future__ import annotations

import json
import logging
import socketserver
import sys
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from hgm.errors import UserError
from hgm.llm.scripted import error_body

if TYPE_CHECKING:
    from hgm.llm.gateway import Gateway, _Session

log = logging.getLogger("hgm.llm.gateway")
MAX_BODY_BYTES = 64 * 1024 * 1024


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    gateway: Gateway  # set by Gateway.start

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # an agent that hung up is not news
            log.error("gateway connection failed", exc_info=True)


class GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"  # answer even a garbage request line with a status line
    server: UnixHTTPServer

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        self._send(code, error_body(message or explain or "bad request", "invalid_request_error"))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("gateway: " + format, *args)

    def address_string(self) -> str:
        return "unix"

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _session(self) -> _Session | None:
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        session = self.server.gateway.session_for(token) if token else None
        if session is None:
            self._send(401, error_body("invalid or expired gateway session token", "invalid_request_error",
                                       "invalid_api_key"))
        return session

    def do_GET(self) -> None:
        if self.path.rstrip("/") not in ("/v1/models", "/models"):
            self._send(404, error_body(f"no route GET {self.path}", "invalid_request_error", "not_found"))
            return
        session = self._session()
        if session:
            self._send(200, {"object": "list", "data": [{"id": session.route.name, "object": "model",
                                                         "owned_by": "hgm-gateway"}]})

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._send(411, error_body("Content-Length required", "invalid_request_error"))
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(
                413, error_body(f"request body too large (limit {MAX_BODY_BYTES} bytes)", "invalid_request_error")
            )
            return
        raw = self.rfile.read(length)
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, error_body(f"no route POST {self.path}", "invalid_request_error", "not_found"))
            return
        session = self._session()
        if session is None:
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            self._send(
                400, error_body("body must be a JSON object with a non-empty messages list", "invalid_request_error")
            )
            return
        stream = bool(body.pop("stream", False))
        stream_options = body.pop("stream_options", None) or {}
        try:
            status, payload = self.server.gateway.chat(session, body)
        except UserError as e:
            status, payload = 400, error_body(str(e), "invalid_request_error")
        except Exception as e:  # a gateway bug must not kill the server thread; the agent sees a 500
            log.exception("gateway failed on a request")
            status, payload = 500, error_body(f"hgm gateway internal error: {type(e).__name__}", "server_error")
        if stream and status == 200:
            self._send_sse(as_chunks(payload, include_usage=bool(stream_options.get("include_usage"))))
        else:
            self._send(status, payload)

    def _send_sse(self, chunks: list[dict[str, Any]]) -> None:
        data = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def as_chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A finished chat completion as `chat.completion.chunk` events (streaming clients): the whole
    message in one delta per choice, then the finish reasons, then usage if asked for."""
    base = {k: completion.get(k) for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    chunks = []
    for choice in completion.get("choices") or []:
        delta = {k: v for k, v in (choice.get("message") or {}).items() if k != "tool_calls"}
        calls = (choice.get("message") or {}).get("tool_calls")
        if calls:
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
        index = choice.get("index", 0)
        chunks.append(base | {"choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        chunks.append(base | {"choices": [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}]})
    if include_usage:
        chunks.append(base | {"choices": [], "usage": completion.get("usage")})
    return chunks
