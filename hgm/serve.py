"""`hgm serve RUN`: a local page of a live run, with the steering actions as buttons.

Loopback only (127.0.0.1), and every URL starts with a random token (`/TOKEN/...`): a request
without it, or with a wrong one, gets 403 and nothing else. The page is the report's view of the
tree (hgm/report: the same figure and node panels, plotly.js inlined, nothing fetched from the
network); it polls `/TOKEN/state` and redraws. A button POSTs to `/TOKEN/steer`, which records the
same row as `hgm steer` (hgm/cli_steer.act); the run's scheduler applies it at its next decision.
The store is opened per request (read-only to show, `live` to write), so this process never holds
the run open.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import plotly.io as pio

from hgm.cli_steer import act
from hgm.errors import UserError
from hgm.report import steering_html
from hgm.report.data import RunData, is_run_dir, load_run
from hgm.report.page import PLOT_CONFIG, asset, json_script, render_page
from hgm.report.panels import diff_css, node_panels
from hgm.report.tree import tree_figure
from hgm.steering import Action, answers
from hgm.store import RunStore

HOST = "127.0.0.1"
MAX_BODY = 64_000


def page_state(run_dir: Path) -> dict[str, Any]:
    """What the page draws: the tree figure, the node panels, the steering state."""
    run = load_run(run_dir)
    steering = run.steering
    root = run.nodes[0].id if run.nodes else -1
    decided = answers(run.interventions)
    return {
        "status": run.status, "evals": f"{run.evals_used} of {run.budget}", "agents": len(run.stats),
        "paused": steering.paused, "gate": steering.gate,
        "pending": [n.id for n in run.nodes if steering.pending(n.id, root)],
        "marks": {str(s.id): s.marks for s in run.stats.values()},
        "requests": [{"id": r.id, "kind": r.kind.value, "what": r.what, "node": r.node_id}
                     for r in run.requests if r.id not in decided],
        "figure": json.loads(pio.to_json(tree_figure(run), validate=False)),
        "panels": node_panels(run, run_dir), "steering": steering_html(run),
    }


def page_html(run: RunData, token: str) -> str:
    body = ("<section id='live'><h2>Live</h2><p id='live-status' class='muted'></p>"
            "<div id='controls'></div><p id='message' role='status'></p></section>"
            "<section id='tree-section'><h2>Tree of agents</h2><div class='treebox'>"
            "<div id='panel'><p class='muted'>Click an agent for its details and the actions on it.</p></div>"
            "<div class='treeplot'><div id='tree'></div></div></div></section><div id='steering-box'></div>")
    scripts = json_script("hgm-serve", {"base": f"/{token}/", "config": PLOT_CONFIG}) + \
        f"<script>{asset('serve.js')}</script>"
    return render_page(f"hgm serve {run.run_dir.name}", f"{run.run_dir} · live", body, scripts=scripts,
                       css=diff_css())


def make_server(run_dir: Path, *, port: int = 0, who: str, token: str | None = None) -> tuple[ThreadingHTTPServer, str]:
    """The server (not started) and its URL."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise UserError(f"no hgm run in {run_dir} (missing run.sqlite); give a run directory made by `hgm run`")
    token = token or secrets.token_urlsafe(24)
    handler = _handler(run_dir, token, who)
    try:
        server = ThreadingHTTPServer((HOST, port), handler)
    except OSError as e:
        raise UserError(f"cannot listen on {HOST}:{port} ({e}); choose another --port or leave it out") from None
    server.daemon_threads = True
    return server, f"http://{HOST}:{server.server_address[1]}/{token}/"


def _handler(run_dir: Path, token: str, who: str) -> type[BaseHTTPRequestHandler]:
    prefix = f"/{token}/"

    class Handler(BaseHTTPRequestHandler):
        server_version = "hgm-serve"

        def log_message(self, format: str, *args: object) -> None:  # no token in the terminal's scrollback
            pass

        def _route(self) -> str | None:
            """The path after the token, or None (then 403 was sent)."""
            path = self.path.split("?", 1)[0]
            given = path[: len(prefix)]
            if len(path) < len(prefix) or not hmac.compare_digest(given.encode(), prefix.encode()):
                self._send(403, b"", "text/plain")
                return None
            return path[len(prefix):]

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, data: object) -> None:
            self._send(code, json.dumps(data).encode(), "application/json")

        def do_GET(self) -> None:  # http.server calls it by this name
            route = self._route()
            if route is None:
                return
            if route == "":
                self._send(200, page_html(load_run(run_dir), token).encode(), "text/html; charset=utf-8")
            elif route == "state":
                self._json(200, page_state(run_dir))
            else:
                self._send(404, b"", "text/plain")

        def do_POST(self) -> None:
            route = self._route()
            if route is None:
                return
            if route != "steer" or self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                self._send(404, b"", "text/plain")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"error": "request too large"})
                return
            try:
                self._json(200, {"message": _steer(run_dir, who, json.loads(self.rfile.read(length) or b"{}"))})
            except (UserError, ValueError, KeyError, TypeError) as e:
                self._json(400, {"error": str(e)})

    return Handler


def _steer(run_dir: Path, who: str, body: dict[str, Any]) -> str:
    """One button's action, through the same checks as `hgm steer`."""
    action = Action(body["action"])
    if action in (Action.GRANT,) and body.get("path"):
        raise UserError("grant a file with `hgm steer RUN grant ID --path FILE` (the page does not take host paths)")
    kw: dict[str, Any] = {"why": str(body.get("why") or "")}
    for key, cast in (("node", int), ("count", int), ("evals", int), ("request", int), ("text", str)):
        if body.get(key) not in (None, ""):
            kw[key] = cast(body[key])
    with RunStore.open(run_dir, live=True) as store:
        return act(store, who, action, **kw)


def serve(run_dir: Path, *, port: int, who: str, on_ready: Callable[[str], None]) -> None:
    """Serve until interrupted; `on_ready(url)` once listening."""
    server, url = make_server(run_dir, port=port, who=who)
    on_ready(url)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        threading.Thread(target=server.shutdown, daemon=True).start()
        server.server_close()


__all__ = ["HOST", "make_server", "page_state", "serve"]
