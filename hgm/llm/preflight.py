"""Preflight: can each model's endpoint be reached? Checked before the first job, so a run with
no network (or a mistyped --base-url) stops in seconds instead of after minutes of retries.

For each distinct endpoint (host and port of a route's base URL) it resolves the name, opens a
TCP connection and, for https, completes a TLS handshake with the trust the provider client uses
(httpx's); through an HTTP(S)_PROXY that applies, it reaches the proxy and asks it for a tunnel
(CONNECT). No HTTP request reaches a provider, so nothing is billed. Endpoints are checked in
parallel, each step within `STEP_TIMEOUT_S` and each endpoint within `ENDPOINT_TIMEOUT_S`. The
scripted LLM and Unix-socket URLs are not checked. `llm.preflight: false` turns it off (a server
reached in a way this cannot see).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hgm.errors import UserError
from hgm.llm.providers import ModelRoute

STEP_TIMEOUT_S = 3.0
"""Each of name resolution, TCP connect, proxy tunnel and TLS handshake."""
ENDPOINT_TIMEOUT_S = 6.0
"""All steps of one endpoint together (endpoints are checked in parallel)."""


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    models: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def endpoints(routes: Iterable[ModelRoute]) -> list[Endpoint]:
    """The network endpoints of `routes` (scripted and Unix-socket routes have none)."""
    found: dict[tuple[str, str, int], list[str]] = {}
    for r in routes:
        if r.script is not None or not r.base_url:
            continue
        url = urlsplit(r.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            continue  # e.g. http+unix://: a local socket
        port = url.port or (443 if url.scheme == "https" else 80)
        found.setdefault((url.scheme, url.hostname, port), []).append(r.name)
    return [Endpoint(s, h, p, tuple(dict.fromkeys(m))) for (s, h, p), m in found.items()]


class _Clock:
    def __init__(self) -> None:
        self.end = time.monotonic() + ENDPOINT_TIMEOUT_S

    def step(self) -> float:
        """Seconds the next step may take."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"over {ENDPOINT_TIMEOUT_S:g} s in all")
        return min(STEP_TIMEOUT_S, left)


def _resolve(host: str, port: int, clock: _Clock) -> list[tuple[Any, ...]]:
    """getaddrinfo within a step's time (it has no timeout of its own; a daemon thread, so a
    resolver that hangs does not hold up the process's exit)."""
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(_getaddrinfo(host, port)), daemon=True)
    thread.start()
    thread.join(clock.step())
    if not box:
        raise TimeoutError(f"resolving {host} took over {STEP_TIMEOUT_S:g} s")
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]  # type: ignore[return-value]


def _getaddrinfo(host: str, port: int) -> object:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        return e


def _connect(host: str, port: int, clock: _Clock) -> socket.socket:
    last: OSError | None = None
    for family, kind, proto, _, addr in _resolve(host, port, clock):
        s = socket.socket(family, kind, proto)
        try:
            s.settimeout(limit := clock.step())
            s.connect(addr)
            return s
        except TimeoutError:
            s.close()
            raise TimeoutError(f"no TCP connection to {host}:{port} within {limit:g} s") from None
        except OSError as e:
            s.close()
            last = e
    raise last or OSError(f"no address for {host}")


def _proxy_for(e: Endpoint) -> str | None:
    """The proxy the provider client (httpx, trusting the environment) would go through, if any."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(e.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(e.host, proxies):  # type: ignore[attr-defined]
        return None
    return proxy


def _tunnel(sock: socket.socket, e: Endpoint) -> None:
    sock.sendall(f"CONNECT {e.where} HTTP/1.1\r\nHost: {e.where}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer and len(answer) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200" not in status:
        raise ConnectionRefusedError(f"the proxy refused a tunnel to {e.where}: {status or 'no answer'}")


def probe(e: Endpoint) -> str | None:
    """None when `e` answers; otherwise the cause, e.g. 'DNS failure: Name or service not known'."""
    import httpx

    proxy = _proxy_for(e)
    target = urlsplit(proxy) if proxy else None
    host = target.hostname if target and target.hostname else e.host
    port = (target.port or (443 if target.scheme == "https" else 80)) if target else e.port
    via = f" (through the proxy {host}:{port})" if proxy else ""
    clock = _Clock()
    try:
        sock = _connect(host, port, clock)
    except socket.gaierror as err:
        return f"DNS failure: {err.strerror or err}{via}"
    except ConnectionRefusedError:
        return f"connection refused by {host}:{port}{via}"
    except TimeoutError as err:
        return f"timeout: {err}{via}"
    except OSError as err:
        return f"cannot connect to {host}:{port}: {err.strerror or err}{via}"
    try:
        with sock:
            if target is not None and target.scheme == "https":
                sock.settimeout(clock.step())
                sock = httpx.create_ssl_context().wrap_socket(sock, server_hostname=host)
            if proxy:
                sock.settimeout(clock.step())
                _tunnel(sock, e)
            if e.scheme == "https":
                sock.settimeout(clock.step())
                with httpx.create_ssl_context().wrap_socket(sock, server_hostname=e.host):
                    pass  # the handshake happens in wrap_socket
    except ssl.SSLError as err:
        return f"TLS error with {e.where}: {getattr(err, 'verify_message', None) or err.reason or err}{via}"
    except TimeoutError:
        return f"timeout: no TLS handshake with {e.where} within {STEP_TIMEOUT_S:g} s{via}"
    except OSError as err:
        return f"{err}{via}"
    return None


def check_endpoints(routes: Iterable[ModelRoute]) -> None:
    """UserError naming every unreachable endpoint, its cause and the fix; returns when all answer."""
    todo = endpoints(routes)
    if not todo:
        return
    with ThreadPoolExecutor(len(todo)) as pool:
        causes = list(pool.map(probe, todo))
    bad = [f"{e.where} (model {', '.join(e.models)}): {cause}" for e, cause in zip(todo, causes, strict=True) if cause]
    if bad:
        raise UserError(
            f"cannot reach the LLM endpoint{'s' if len(bad) > 1 else ''} {'; '.join(bad)}. Nothing was started. "
            "Check the network and any proxy (HTTPS_PROXY), the model name or its server (--set llm.base_url=URL), "
            "and `hgm doctor`; if the server is reachable in a way this check cannot see, "
            "--set llm.preflight=false.")
