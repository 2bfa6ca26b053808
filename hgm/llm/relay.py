"""Worker nodes reach the central LLM gateway through a relay; API keys never leave the head.

Head: `RelayListener(gateway, host, port)` serves, on TCP, the gateway's OpenAI-compatible routes
(`/v1/...`, answered by the same handler as the gateway's Unix socket) and a small control API
for workers: open a session (`POST /hgm/sessions/open`), read or close one
(`/hgm/sessions/usage`, `/hgm/sessions/close`: its usage says whether the run's budget cut it
off), a model's context window (`POST /hgm/context-window`). Every request must carry the run's
relay secret (header X-HGM-Relay-Secret, random per run); the gateway keeps the key, the budgets
and the accounting, as for local jobs.

Node: `LocalRelay(socket, head_url, secret)` serves a Unix socket that sandboxes mount, and
forwards only the OpenAI routes to the head, adding the secret. An agent there has its session
token and nothing else: it cannot open sessions, read other sessions or learn the secret.

`GatewayClient` is what a worker's jobs use in place of the `Gateway` (hgm.jobs.GatewayAccess):
control calls go to the head directly; sandboxes and the diagnosis use the local relay's socket.
The HTTP servers are the standard library's (a few routes, no framework needed); the client is
httpx, as elsewhere.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import socketserver
import sys
import tempfile
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from hgm.errors import UserError
from hgm.llm.gateway_http import MAX_BODY_BYTES, GatewayHandler, UnixHTTPServer
from hgm.llm.scripted import error_body

if TYPE_CHECKING:
    from hgm.llm.gateway import Gateway, SessionUsage

SECRET_HEADER = "X-HGM-Relay-Secret"
OPENAI_ROUTES = ("/v1/", "/chat/completions", "/models")
log = logging.getLogger("hgm.llm.relay")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


# -- head ----------------------------------------------------------------------------------------


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    gateway: Gateway
    secret: str

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            log.error("relay listener connection failed", exc_info=True)


class _ListenerHandler(GatewayHandler):
    server: _TCPServer  # type: ignore[assignment]

    def address_string(self) -> str:
        return str(self.client_address[0])

    def _authorized(self) -> bool:
        given = self.headers.get(SECRET_HEADER, "")
        if hmac.compare_digest(given.encode(), self.server.secret.encode()):
            return True
        self.close_connection = True
        self._send(403, error_body("missing or wrong relay secret", "invalid_request_error", "forbidden"))
        return False

    def do_GET(self) -> None:
        if self._authorized():
            super().do_GET()

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if not self.path.startswith("/hgm/"):
            super().do_POST()
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(min(max(length, 0), MAX_BODY_BYTES)) or b"{}")
            gw = self.server.gateway
            if self.path == "/hgm/sessions/open":
                token = gw.open_session(body["role"], body["model"], node_id=body.get("node_id"),
                                        task_id=body.get("task_id"))
                self._send(200, {"token": token})
            elif self.path == "/hgm/sessions/usage":
                self._send(200, asdict(gw.session_usage(body["token"])))
            elif self.path == "/hgm/sessions/close":
                self._send(200, asdict(gw.close_session(body["token"])))
            elif self.path == "/hgm/context-window":
                self._send(200, {"context_window": gw.context_window(body["model"])})
            else:
                self._send(404, error_body(f"no route POST {self.path}", "invalid_request_error", "not_found"))
        except UserError as e:
            self._send(400, error_body(str(e), "invalid_request_error"))
        except (KeyError, ValueError, TypeError) as e:
            self._send(400, error_body(f"bad control request: {e!r}", "invalid_request_error"))


class RelayListener:
    """The central gateway on TCP for worker nodes (`with RelayListener(gw, host) as listener:`)."""

    def __init__(self, gateway: Gateway, host: str, port: int = 0, secret: str | None = None) -> None:
        self.gateway, self.host, self.port = gateway, host, port
        self.secret = secret or new_secret()
        self._server: _TCPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> RelayListener:
        try:
            server = _TCPServer((self.host, self.port), _ListenerHandler)
        except OSError as e:
            raise UserError(f"the gateway relay cannot listen on {self.host}:{self.port} ({e}); set "
                            "executor.head_address to an address of this machine that worker nodes reach") from None
        server.gateway, server.secret = self.gateway, self.secret
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.1,), name="hgm-relay-listener", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> RelayListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- node ----------------------------------------------------------------------------------------


class _ForwardHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"
    server: _RelayServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("relay: " + format, *args)

    def address_string(self) -> str:
        return "unix"

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, method: str) -> None:
        body = b""
        if method == "POST":
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self.close_connection = True
                self._reply(411, json.dumps(error_body("Content-Length required", "invalid_request_error")).encode())
                return
            if not 0 <= length <= MAX_BODY_BYTES:
                self.close_connection = True
                self._reply(413, json.dumps(error_body("request body too large", "invalid_request_error")).encode())
                return
            body = self.rfile.read(length)
        if not self.path.startswith(OPENAI_ROUTES):  # the control API is for workers, not for sandboxes
            self._reply(404, json.dumps(error_body(f"no route {method} {self.path}", "invalid_request_error",
                                                   "not_found")).encode())
            return
        headers = {SECRET_HEADER: self.server.secret}
        for name in ("Authorization", "Content-Type"):
            if self.headers.get(name):
                headers[name] = self.headers[name]
        try:
            r = self.server.client.request(method, self.path, content=body, headers=headers)
        except httpx.HTTPError as e:
            why = f"the node's relay cannot reach the head's gateway at {self.server.head_url}: {e!r}"
            self._reply(502, json.dumps(error_body(why, "relay_error", "relay_error")).encode())
            return
        self._reply(r.status_code, r.content, r.headers.get("Content-Type", "application/json"))

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")


class _RelayServer(UnixHTTPServer):
    client: httpx.Client
    secret: str
    head_url: str


class LocalRelay:
    """A Unix socket on a worker node that forwards sandboxes' LLM requests to the head."""

    def __init__(self, head_url: str, secret: str, *, timeout_s: float, socket_path: Path | None = None) -> None:
        self.head_url, self.secret, self.timeout_s = head_url, secret, timeout_s
        self.socket_path = socket_path or Path(tempfile.mkdtemp(prefix="hgm-relay-")) / "gateway.sock"
        self._server: _RelayServer | None = None

    def start(self) -> LocalRelay:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        server = _RelayServer(str(self.socket_path), _ForwardHandler)
        server.client = httpx.Client(base_url=self.head_url, timeout=self.timeout_s)
        server.secret, server.head_url = self.secret, self.head_url
        os.chmod(self.socket_path, 0o666)  # any uid in the sandbox may connect; the token is the access control
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.1,), name="hgm-local-relay", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.client.close()
            self._server = None
            self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> LocalRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GatewayClient:
    """The central gateway as seen from a worker node (hgm.jobs.GatewayAccess)."""

    def __init__(self, head_url: str, secret: str, relay: LocalRelay) -> None:
        self._relay = relay
        self._http = httpx.Client(base_url=head_url, headers={SECRET_HEADER: secret}, timeout=60)

    @property
    def socket_path(self) -> Path:
        return self._relay.socket_path

    def context_window(self, model: str) -> int | None:
        window = self._call("POST", "/hgm/context-window", {"model": model})["context_window"]
        return None if window is None else int(window)

    def open_session(self, role: str, model: str, node_id: int | None = None, task_id: str | None = None) -> str:
        return str(self._call("POST", "/hgm/sessions/open",
                              {"role": role, "model": model, "node_id": node_id, "task_id": task_id})["token"])

    def session_usage(self, token: str) -> SessionUsage:
        return self._usage(self._call("POST", "/hgm/sessions/usage", {"token": token}))

    def close_session(self, token: str) -> SessionUsage:
        return self._usage(self._call("POST", "/hgm/sessions/close", {"token": token}))

    def close(self) -> None:
        self._http.close()

    @staticmethod
    def _usage(data: dict[str, Any]) -> SessionUsage:
        from hgm.llm.gateway import SessionUsage

        return SessionUsage(**data)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self._http.request(method, path, json=body)
        if r.status_code == 400:
            raise UserError(r.json().get("error", {}).get("message", r.text))
        r.raise_for_status()
        reply: dict[str, Any] = r.json()
        return reply


__all__ = ["SECRET_HEADER", "GatewayClient", "LocalRelay", "RelayListener", "new_secret"]
