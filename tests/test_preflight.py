"""Preflight (hgm/llm/preflight.py): an unreachable model endpoint stops `hgm run`, `eval-agent`
and `solve` within seconds, naming the host, the cause and the fix; nothing is started."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from hgm.config import LLMConfig
from hgm.errors import UserError
from hgm.llm.preflight import STEP_TIMEOUT_S, check_endpoints, endpoints
from hgm.llm.providers import ProviderTable, check_llm


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once it is closed


class Server:
    """A loopback TCP server that accepts and then does `behaviour` with each connection."""

    def __init__(self, behaviour: str) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.behaviour == "plain-http":  # not TLS: the handshake fails
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                conn.close()
            elif self.behaviour == "proxy-refuses":  # an HTTP proxy that will not open the tunnel
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                conn.close()
            else:  # "silent": accepts and never says anything
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


def routes(*names: str, base_url: str | None = None):
    table = ProviderTable.load()
    return [table.resolve(n, base_url) for n in names]


def test_a_closed_port_is_refused_naming_the_host_and_the_fix():
    port = closed_port()
    with pytest.raises(UserError) as e:
        check_endpoints(routes(f"m@http://127.0.0.1:{port}/v1"))
    text = str(e.value)
    assert f"127.0.0.1:{port} (model m@http://127.0.0.1:{port}/v1): connection refused" in text
    assert "--set llm.base_url=URL" in text and "hgm doctor" in text and "--set llm.preflight=false" in text


def test_an_unresolvable_name_is_a_dns_failure():
    with pytest.raises(UserError, match=r"nonexistent\.invalid:443 .*DNS failure"):
        check_endpoints(routes("deepseek-chat", base_url="https://nonexistent.invalid/v1"))


def test_a_server_that_speaks_no_tls_is_a_tls_error_and_one_that_says_nothing_a_timeout():
    plain, silent = Server("plain-http"), Server("silent")
    try:
        with pytest.raises(UserError, match=rf"127\.0\.0\.1:{plain.port} .*TLS error"):
            check_endpoints(routes(f"m@https://127.0.0.1:{plain.port}/v1"))
        start = time.monotonic()
        with pytest.raises(UserError, match=rf"127\.0\.0\.1:{silent.port} .*timeout: no TLS handshake"):
            check_endpoints(routes(f"m@https://127.0.0.1:{silent.port}/v1"))
        assert time.monotonic() - start < STEP_TIMEOUT_S + 2
    finally:
        plain.close()
        silent.close()


def test_through_a_proxy_the_proxy_is_reached_and_asked_for_a_tunnel(monkeypatch):
    """As the provider client (httpx) would: HTTPS_PROXY applies unless NO_PROXY names the host."""
    for var in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    port = closed_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    with pytest.raises(UserError, match=rf"connection refused by 127\.0\.0\.1:{port} \(through the proxy"):
        check_endpoints(routes("deepseek-chat"))
    proxy = Server("proxy-refuses")
    try:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        with pytest.raises(UserError, match=r"the proxy refused a tunnel to api\.deepseek\.com:443: HTTP/1.1 403"):
            check_endpoints(routes("deepseek-chat"))
        monkeypatch.setenv("NO_PROXY", "nonexistent.invalid")
        with pytest.raises(UserError, match="DNS failure") as e:
            check_endpoints(routes("deepseek-chat", base_url="https://nonexistent.invalid/v1"))
        assert "through the proxy" not in str(e.value)
    finally:
        proxy.close()


def test_a_listening_endpoint_passes_and_scripted_models_have_none(tmp_path):
    server = Server("silent")
    try:
        check_endpoints(routes(f"m@http://127.0.0.1:{server.port}/v1"))  # plain http: TCP is enough
    finally:
        server.close()
    script = tmp_path / "s.json"
    script.write_text("[]")
    assert endpoints(routes(f"scripted:{script}")) == []
    both = endpoints(routes("deepseek-chat", "deepseek-reasoner"))
    assert [(e.host, e.port, e.models) for e in both] == [
        ("api.deepseek.com", 443, ("deepseek-chat", "deepseek-reasoner"))
    ]


def test_the_config_switch_turns_it_off():
    dead = f"m@http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(UserError, match="connection refused"):
        check_llm(LLMConfig(), [dead], env={})
    assert [r.name for r in check_llm(LLMConfig(preflight=False), [dead], env={})] == [dead]


def hgm(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, **(env or {}), "COLUMNS": "300"}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "hgm.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )
    return done, time.monotonic() - start


@pytest.mark.parametrize("where, cause",
                         [("closed-port", "connection refused"), ("nonexistent.invalid", "DNS failure")])
def test_hgm_run_with_an_unreachable_provider_stops_at_once_naming_the_cause(tmp_path, polyglot_path, monkeypatch,
                                                                              where, cause):
    url = f"http://127.0.0.1:{closed_port()}/v1" if where == "closed-port" else "https://nonexistent.invalid/v1"
    done, _ = hgm("run", "--polyglot", "--from", str(polyglot_path), "--self-improve-llm", "deepseek-chat",
                  "--max-task-evals", "1", "--set", f"llm.base_url={url}", cwd=tmp_path,
                  env={"DEEPSEEK_API_KEY": "sk-not-a-real-key"})
    assert done.returncode == 2, done.stderr
    assert cause in done.stderr and "cannot reach the LLM endpoint" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [], "no run directory, nothing started"

    # The same in-process, timed without the interpreter's start-up (which a loaded machine can stretch;
    # bench/preflight_exit.py times the whole command): within 10 s whatever the endpoint does.
    from hgm.config import load_config
    from hgm.run import new_run

    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-not-a-real-key")
    cfg = load_config(None, [f"llm.base_url={url}", f"benchmark.path={polyglot_path}", "search.max_task_evals=1"])
    start = time.monotonic()
    with pytest.raises(UserError, match=cause):
        new_run(tmp_path / "run", cfg, Console(file=io.StringIO()))
    assert time.monotonic() - start < 10
    assert not (tmp_path / "run").exists()


def test_eval_agent_solve_and_llm_check_check_their_model_too(tmp_path, polyglot_path):
    dead = f"m@http://127.0.0.1:{closed_port()}/v1"
    done, _ = hgm("llm", "check", dead, cwd=tmp_path)
    assert done.returncode == 2 and "connection refused" in done.stderr, done.stderr
    done, _ = hgm("eval-agent", "initial", "python__transpose", "--from", str(polyglot_path), "--llm", dead,
                  cwd=tmp_path)
    assert done.returncode == 2 and "connection refused" in done.stderr, done.stderr
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("print(1)\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "a.py"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init"],
                   check=True)
    done, _ = hgm("solve", "initial", "--repo", str(repo), "--statement", "fix it", "--llm", dead, cwd=tmp_path)
    assert done.returncode == 2 and "connection refused" in done.stderr, done.stderr


def test_doctor_reports_the_configured_models_endpoints(tmp_path):
    """`hgm doctor` (which the preflight's message points to) says which endpoint cannot be reached and why."""
    from hgm.paths import cache_dir

    port = closed_port()
    user = tmp_path / "home" / ".config" / "hgm"
    user.mkdir(parents=True)
    (user / "providers.yaml").write_text(
        f"providers:\n  deepseek: {{base_url: 'http://127.0.0.1:{port}/v1', key_env: DEEPSEEK_API_KEY}}\n")
    done, _ = hgm("doctor", cwd=tmp_path, env={"HOME": str(tmp_path / "home"), "HGM_CACHE_DIR": str(cache_dir())})
    row = next(line for line in done.stdout.splitlines() if "llm endpoint" in line)
    assert f"llm endpoint 127.0.0.1:{port}" in row and f"connection refused by 127.0.0.1:{port}" in row, done.stdout
    assert "--set llm.base_url=URL" in row
