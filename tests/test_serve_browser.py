"""`hgm serve` in a real headless Chromium (Debian's, driven by Playwright) beside a live scripted
`hgm run --approve rewrites`: an approval clicked on the page lands in the store, and the run's
scheduler acts on it (it evaluates the child, then finishes); no request leaves loopback; without
the token nothing is served. A screenshot is kept in test-artifacts/."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_report_browser import artifacts, assert_not_blank, drawn
from test_steer_live import rows, run_args, start, wait_log

from hgm.domain import COUNTED
from hgm.steering import Action
from hgm.store import RunStore

from browser import chromium, missing
from llm_scripts import write_scripts

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(missing() is not None and not os.environ.get("CI"), reason=missing() or "")]


def serve_url(proc: subprocess.Popen, timeout: float = 60) -> str:
    end = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if " on http://127.0.0.1:" in line:
            return line.split(" on ", 1)[1].split()[0]
        assert proc.poll() is None, proc.communicate()[1]
    raise AssertionError("hgm serve printed no URL")


def test_an_approval_clicked_on_the_page_reaches_the_scheduler(tmp_path: Path, polyglot_path: Path) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    proc = start(*run_args(run, models, polyglot_path, 5, "--approve", "rewrites"))
    server: subprocess.Popen | None = None
    try:
        wait_log(run, proc, "approves or rejects node(s) 2:")
        server = subprocess.Popen([sys.executable, "-m", "hgm.cli", "serve", str(run), "--who", "browser-user"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "COLUMNS": "300"})
        url = serve_url(server)
        origin = url.split("/", 3)[:3]
        for bare in ("/".join(origin) + "/", "/".join(origin) + "/state", url[:-2] + "x/"):
            try:
                urllib.request.urlopen(bare, timeout=10)
                raise AssertionError(f"{bare} was served")
            except urllib.error.HTTPError as e:
                assert e.code == 403 and e.read() == b""
        with chromium() as browser:
            page = browser.new_page()  # type: ignore[attr-defined]
            requests: list[str] = []
            errors: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            for bare in ("/".join(origin) + "/", url[:-2] + "x/"):  # the browser's own HTTP client
                denied = page.request.get(bare)
                assert denied.status == 403 and denied.body() == b"", bare
            page.goto(url, wait_until="load")
            page.wait_for_function("document.getElementById('live-status').textContent"
                                   ".includes('waiting for approval: node 2')")
            page.wait_for_selector("#tree .scatterlayer .point")
            child = next(p for p in drawn(page) if p["node"] == 2)
            page.mouse.click(child["x"], child["y"])  # the tree's point, as a person clicks it
            page.wait_for_selector("#approve")
            assert "node 2 waits for approval" in page.inner_text("#node-actions")
            before = time.time()
            page.click("#approve")
            page.wait_for_function("document.getElementById('message').textContent.includes('recorded')")
            shot = artifacts() / "serve-approved.png"
            page.screenshot(path=str(shot), full_page=True)
            assert_not_blank(shot)
            assert not errors, errors
            loopback = "/".join(origin) + "/"
            assert requests and all(r.startswith(loopback) for r in requests), \
                [r for r in requests if not r.startswith(loopback)]
        _, err = proc.communicate(timeout=600)  # the scheduler evaluates the approved child and finishes
        assert proc.returncode == 0, err[-3000:]
    finally:
        for p in (proc, server):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
    evals, _, interventions = rows(run)
    assert [(i.action, i.node_id, i.who) for i in interventions] == [(Action.APPROVE, 2, "browser-user")]
    mine = [e for e in evals if e.node_id == 2 and e.status in COUNTED]
    assert mine and all(e.started_at >= before for e in mine), "the child was evaluated once approved"
    with RunStore.open(run, readonly=True) as s:
        assert s.get_meta("final_agent") is not None
