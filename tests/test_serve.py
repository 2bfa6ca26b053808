"""`hgm serve`'s server over a small store, with a plain HTTP client: the token guards everything,
a POST records the same row as `hgm steer`, mistakes come back as 400 with the reason.
The page in a real browser on a live run: tests/test_serve_browser.py."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hgm.config import load_config
from hgm.serve import HOST, make_server
from hgm.steering import Action
from hgm.store import RunStore


def fetch(url: str, body: object | None = None, kind: str = "application/json") -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": kind} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def served(tmp_path: Path):
    run = tmp_path / "run"
    config = load_config(None, ["steer.approve=rewrites"])
    with RunStore.create(run, config) as store:
        root = store.add_node(None, "a" * 40, "initial agent")
        store.finish_expansion(store.start_expansion(root), _committed())
    server, url = make_server(run, who="alice@lab")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield run, url
    server.shutdown()
    server.server_close()


def _committed():
    from hgm.domain import ExpansionOutcome, ExpansionStatus

    return ExpansionOutcome(ExpansionStatus.COMMITTED, commit="b" * 40, message="Run the tests first")


def test_without_the_token_nothing_is_served(served: tuple[Path, str]) -> None:
    run, url = served
    base = url.rsplit("/", 2)[0]
    assert url.startswith(f"http://{HOST}:")
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert len(token) >= 32
    wrong = token[:-1] + ("y" if token[-1] != "y" else "z")  # one character off (never the token itself)
    for path in ("/", "/state", f"/{wrong}/", f"/{wrong}/state", "/favicon.ico", f"/{token}"):
        code, body = fetch(base + path)
        assert (code, body) == (403, b""), path
    code, body = fetch(base + "/x" * 3 + "/steer", {"action": "pause"})
    assert (code, body) == (403, b"")
    with RunStore.open(run, readonly=True) as s:
        assert s.interventions() == [], "a POST without the token wrote nothing"


def test_the_page_and_its_state_and_a_button_write_the_same_row_as_hgm_steer(served: tuple[Path, str]) -> None:
    run, url = served
    code, page = fetch(url)
    assert code == 200 and b"hgm serve" in page and b"src=\"http" not in page, "plotly.js is inlined, no CDN"
    code, state = fetch(url + "state")
    data = json.loads(state)
    assert code == 200 and data["pending"] == [2] and data["marks"]["2"] == ["pending approval"]
    assert data["figure"]["data"], "the report's tree figure"

    code, answer = fetch(url + "steer", {"action": "approve", "node": 2, "why": "looks fine"})
    assert code == 200 and b"recorded" in answer
    code, answer = fetch(url + "steer", {"action": "approve", "node": 2})
    assert code == 400 and b"not waiting for a decision" in answer
    code, answer = fetch(url + "steer", {"action": "reject", "node": 1, "why": "x"})
    assert code == 400 and b"needs no approval" in answer
    code, answer = fetch(url + "steer", {"action": "explode"})
    assert code == 400
    code, _ = fetch(url + "steer", {"action": "pause"}, kind="text/plain")
    assert code == 404, "only JSON bodies are taken"
    with RunStore.open(run, readonly=True) as s:
        rows = s.interventions()
    assert [(r.action, r.node_id, r.who, r.why) for r in rows] == [(Action.APPROVE, 2, "alice@lab", "looks fine")]
    assert json.loads(fetch(url + "state")[1])["pending"] == []
