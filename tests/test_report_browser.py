"""The report and the comparison in a real headless Chromium (Debian's, driven by Playwright).

The run under test is a small scripted `hgm run` (scripted LLM, bwrap, the Python toolchain) that
starts from the user's own agent directory (`--agent`), is reported while it runs, SIGKILLed,
reported again, resumed to the end and reported once more. Screenshots are kept in test-artifacts/
at the repository root (or $HGM_TEST_ARTIFACTS).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hgm.domain import ExpansionStatus
from hgm.show_tree import tree_stats
from hgm.store import RunStore

from browser import ARTIFACTS, chromium, missing
from live_runs import hgm, in_flight, report_live_then_kill
from llm_scripts import write_scripts

# Skipped (with the reason) only on a developer's machine without Chromium; in CI (CI=true), where
# `scripts/install.sh --dev` installs it, a missing browser fails the tests instead.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(missing() is not None and not os.environ.get("CI"), reason=missing() or "")]

INITIAL_AGENT = Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial"
TASKS = "python__transpose,python__proverb,python__beer-song"
MARKER = "# my own agent, for the report test"
NO_RESULT_FILL = "rgb(200, 200, 200)"  # the report's grey (#c8c8c8), as the browser reports it
POINTS_JS = """(name) => {
  const trace = Array.from(document.querySelectorAll('#tree .scatterlayer .trace'))
    .find(t => t.__data__ && t.__data__[0].trace.name === name);
  if (!trace) { return []; }
  return Array.from(trace.querySelectorAll('.point')).map(p => {
    const r = p.getBoundingClientRect();
    return {node: trace.__data__[0].trace.customdata[p.__data__.i], x: r.x + r.width / 2, y: r.y + r.height / 2,
            fill: p.style.fill};
  });
}"""
"""The drawn markers of one trace of the tree ('agents', 'failed rewrite'): node id, centre, colour."""


def drawn(page: object, trace: str = "agents") -> list[dict]:
    return page.evaluate(POINTS_JS, trace)  # type: ignore[attr-defined]


def artifacts() -> Path:
    path = Path(os.environ.get("HGM_TEST_ARTIFACTS", ARTIFACTS))
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_args(run: Path, models: dict[str, str], polyglot: Path, budget: int, seed: int, policy: str) -> list[str]:
    return ["run", "--tasks", TASKS, "--from", str(polyglot), "--sandbox", "bwrap", "--policy", policy,
            "--downstream-llm", models["downstream"], "--self-improve-llm", models["self_improve"],
            "--diagnose-llm", models["diagnose"], "--max-task-evals", str(budget), "--initial-evals", "2",
            "--seed", str(seed), "--run-dir", str(run), "--set", "search.initial_expansions=1",
            "--set", "sandbox.agent_timeout_s=240"]


@pytest.fixture(scope="module")
def scripted_runs(tmp_path_factory: pytest.TempPathFactory, polyglot_path: Path) -> tuple[Path, Path]:
    """(the killed-and-resumed run from the user's own agent, a second finished run with another policy)."""
    tmp = tmp_path_factory.mktemp("report-browser")
    models = write_scripts(tmp / "scripts", polyglot_path)
    agent = tmp / "my-agent"
    shutil.copytree(INITIAL_AGENT, agent, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    with (agent / "prompts.py").open("a") as f:
        f.write(f"\n{MARKER}\n")
    run = tmp / "run"
    proc = subprocess.Popen([sys.executable, "-m", "hgm.cli", *run_args(run, models, polyglot_path, 6, 1, "hgm"),
                             "--workers", "2", "--agent", str(agent)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "300"})
    report_live_then_kill(proc, run, results=2, live=tmp / "live.html", timeout_s=600)
    killed = hgm("report", str(run), "-o", str(tmp / "killed.html"))
    assert killed.returncode == 0, killed.stderr
    assert ("· killed ·" if in_flight(run) else "· stopped ·") in (tmp / "killed.html").read_text()
    resumed = hgm("run", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = hgm("report", str(run))
    assert done.returncode == 0, done.stderr
    other = tmp / "run-greedy"
    second = hgm(*run_args(other, models, polyglot_path, 4, 2, "greedy"))
    assert second.returncode == 0, second.stderr[-3000:]
    return run, other


def open_page(context: object, path: Path) -> tuple[object, list[str], list[str]]:
    """The page, its console errors (and uncaught exceptions), and every request that left file://."""
    page = context.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:")) else outside.append(r.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, errors, outside


def assert_not_blank(png: Path) -> None:
    from PIL import Image

    with Image.open(png) as im:
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 100, f"{png} looks blank ({len(colors or [])} colours)"


def assert_coloured_by(fills: dict[int, str], values: dict[int, float | None]) -> None:
    """Drawn colours follow `values` (one colour per value, grey for none), whatever the values are."""
    assert fills.keys() == values.keys()
    for i in fills:
        assert (fills[i] == NO_RESULT_FILL) == (values[i] is None), (i, fills[i], values[i])
        for j in fills:
            if values[i] is not None and values[j] is not None:
                assert (fills[i] == fills[j]) == (round(values[i], 9) == round(values[j], 9)), (fills, values)


def test_report_renders_and_a_click_shows_the_diff(scripted_runs: tuple[Path, Path]) -> None:
    run, _ = scripted_runs
    with RunStore.open(run, readonly=True) as s:
        nodes = s.nodes()
        child = next(x.child_id for x in s.expansions() if x.status == ExpansionStatus.COMMITTED)
        stats = tree_stats(s)
    html = (run / "report.html").read_text()
    assert "· finished ·" in html
    assert f"The initial agent from {run.parent / 'my-agent'}" in json.loads(
        html.split('id="hgm-panels">')[1].split("</script>")[0])[str(nodes[0].id)]
    root_prompts = subprocess.run(["git", "--git-dir", str(run / "archive"), "show", "refs/hgm/root:prompts.py"],
                                  capture_output=True, text=True, check=True).stdout
    assert MARKER in root_prompts, "the search started from the user's own agent (--agent)"
    with chromium() as browser:
        page, errors, outside = open_page(browser, run / "report.html")
        page.wait_for_selector("#tree .scatterlayer .point")
        points = drawn(page)
        assert sorted(p["node"] for p in points) == [n.id for n in nodes], "every agent of the store is drawn"
        target = next(p for p in points if p["node"] == child)  # a real mouse click on the drawn marker
        page.mouse.click(target["x"], target["y"])
        page.wait_for_selector("#panel .diff")
        assert page.inner_text("#panel h3").startswith(f"Node {child} ")
        diff = page.inner_text("#panel .diff")
        assert "+# lesson: run the tests before you stop" in diff and "prompts.py" in diff
        own = {i: s.solved / s.evaluated if s.evaluated else None for i, s in stats.items()}
        cmp = {i: s.cmp for i, s in stats.items()}
        before = {p["node"]: p["fill"] for p in drawn(page)}
        assert_coloured_by(before, own)
        page.get_by_text("CMP", exact=True).click()
        page.wait_for_timeout(300)
        after = {p["node"]: p["fill"] for p in drawn(page)}
        assert_coloured_by(after, cmp)
        assert page.text_content("#tree .cbtitle text") == "CMP", "the colour bar names what it shows"
        if any(own[i] != cmp[i] for i in stats):  # which outcomes a scripted run gets depends on timing
            assert after != before, "the colour switch recolours the agents"
        assert page.locator("#curves-plot .scatterlayer .trace").count() >= 5
        assert page.locator("#matrix-plot .hm, #matrix-plot .heatmaplayer image").count() >= 1
        shot = artifacts() / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        assert errors == [] and outside == [], (errors, outside)
    assert_not_blank(shot)


def test_comparison_renders(scripted_runs: tuple[Path, Path], tmp_path: Path) -> None:
    run, other = scripted_runs
    out = tmp_path / "compare.html"
    done = hgm("compare", str(run), str(other), "-o", str(out))
    assert done.returncode == 0, done.stderr
    with chromium() as browser:
        page, errors, outside = open_page(browser, out)
        page.wait_for_selector("#compare-curves .scatterlayer .trace")
        groups = page.locator("table.groups tr").all_inner_texts()[1:]
        assert [g.split("\t")[0].split(",")[0] for g in groups] == ["hgm", "greedy"]
        # each run's line and each group's mean, in both panels
        assert page.locator("#compare-curves .scatterlayer .trace").count() == 2 * (2 + 2)
        shot = artifacts() / "compare.png"
        page.screenshot(path=str(shot), full_page=True)
        assert errors == [] and outside == [], (errors, outside)
    assert_not_blank(shot)


def test_a_1000_agent_report_and_a_simulated_comparison(tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    done = hgm("simulate", "--run-dir", str(sim), "--max-task-evals", "1300", "--set", "search.alpha=1.0")
    assert done.returncode == 0, done.stderr
    assert hgm("report", str(sim)).returncode == 0
    with RunStore.open(sim, readonly=True) as s:
        n_nodes = len(s.nodes())
        n_failed = sum(x.status == ExpansionStatus.FAILED for x in s.expansions())
    assert n_nodes >= 1000
    html = tmp_path / "simulate.html"
    assert hgm("simulate", "--seeds", "3", "--max-task-evals", "200", "--html", str(html)).returncode == 0
    with chromium() as browser:
        page, errors, outside = open_page(browser, sim / "report.html")
        page.wait_for_selector("#tree .scatterlayer .point")
        assert len(drawn(page)) == n_nodes
        assert n_failed and len(drawn(page, "failed rewrite")) == n_failed, "every failed rewrite is drawn"
        page.evaluate("hgmShowNode(2)")
        assert "No code archive" in page.inner_text("#panel")
        page.screenshot(path=str(artifacts() / "report-1000-agents.png"))
        page2, errors2, outside2 = open_page(browser, html)
        page2.wait_for_selector("#compare-curves .scatterlayer .trace")
        assert errors == errors2 == [] and outside == outside2 == [], (errors, errors2, outside, outside2)
    assert_not_blank(artifacts() / "report-1000-agents.png")
