"""The published baselines and the control through the real harness: `hgm run --policy dgm-paper / sica /
best-of-n` with the scripted LLM (it solves python__transpose only), real bwrap sandboxes and the Python
toolchain; then show-tree, the report and `hgm compare --by usd` on the runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_run_e2e import hgm, run_args

from hgm.domain import EvalStatus, MetaKey
from hgm.store import RunStore

from llm_scripts import write_scripts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, polyglot_path: Path) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("baselines")
    models = write_scripts(tmp / "scripts", polyglot_path)
    settings = {
        # stage 1 = transpose + proverb (0.5 for every agent), stage 2 = beer-song, gate 0.6: every child stops
        "dgm-paper": (7, ["search.dgm_paper.stages=[2, 1]", "search.dgm_paper.stage_threshold=0.6",
                          "search.dgm_paper.selfimprove_size=1"]),
        "sica": (9, []),
        "best-of-n": (7, []),
    }
    out = {}
    for policy, (budget, sets) in settings.items():
        run = tmp / policy
        done = hgm(*run_args(run, models, polyglot_path, budget), "--policy", policy,
                   *[a for s in sets for a in ("--set", s)])
        assert done.returncode == 0, done.stderr[-3000:]
        out[policy] = run
    return out


def counted(store: RunStore, node: int) -> list[tuple[str, EvalStatus]]:
    return [(e.task_id, e.status) for e in store.evaluations(node) if e.success is not None]


def show(run: Path) -> tuple[list[dict], str]:
    rows = json.loads(hgm("show-tree", str(run), "--format", "json").stdout)
    return rows, hgm("show-tree", str(run), "--format", "text").stdout


def report(run: Path) -> str:
    done = hgm("report", str(run))
    assert done.returncode == 0, done.stderr
    return (run / "report.html").read_text()


def test_dgm_paper_staged_evaluation_is_recorded_and_shown(runs: dict[str, Path]) -> None:
    run = runs["dgm-paper"]
    with RunStore.open(run, readonly=True) as store:
        nodes = [n.id for n in store.nodes()]
        root, children = nodes[0], nodes[1:]
        assert len(counted(store, root)) == 3  # the initial agent: every stage
        parents = [x.parent_id for x in store.expansions()]  # generation 2's parent: drawn from the archive
        assert len(children) == 2 and parents[0] == root and parents[1] in (root, children[0])
        for child in children:  # stage 1 only: python__transpose solved, python__proverb not -> 0.5 < 0.6
            assert [t for t, _ in counted(store, child)] == ["python__transpose", "python__proverb"]
        schedule = json.loads(store.get_meta(MetaKey.POLICY_STATE))["schedule"]
        final = int(store.get_meta(MetaKey.FINAL_AGENT))
    stopped = "staged: stage 1 (2 tasks), stopped (0.500 after stage 1 (2 tasks) < 0.600 " \
              "(search.dgm_paper.stage_threshold)); archived"
    assert all(schedule[str(c)]["end"] == "stopped" for c in children) and schedule[str(root)]["end"] == "completed"
    rows, text = show(run)
    assert [r["schedule"] for r in rows[1:]] == [stopped, stopped]
    assert rows[0]["schedule"] == ("staged: went on: 0.500 after stage 1 (2 tasks) reached 0.000 (the initial agent is "
                                   "evaluated on every stage); stage 2 (1 tasks), completed (evaluated on every "
                                   "stage: 0.333); archived")
    assert text.count(stopped) == 2 and [r["id"] for r in rows if r["final"]] == [final]
    assert final in children  # the archive's best score: 0.5 on its stage beats the root's 1/3
    page = report(run)
    assert "Staged evaluation (dgm-paper)" in page and page.count("0.500 after stage 1 (2 tasks) &lt; 0.600") == 2


def test_sica_rewrites_the_base_agent_with_the_best_agents_code(runs: dict[str, Path]) -> None:
    run = runs["sica"]
    with RunStore.open(run, readonly=True) as store:
        nodes = [n.id for n in store.nodes()]
        assert len(nodes) == 3
        for node in nodes:  # every agent on the same fixed sample (all three tasks)
            assert sorted(t for t, _ in counted(store, node)) == ["python__beer-song", "python__proverb",
                                                                  "python__transpose"]
        # iteration 1: the root rewrites itself; iteration 2: all score 1/3, the best is the earlier (the
        # root), the most recent reaching its lower bound is node 2: the root's code rewrites node 2's
        assert [x.parent_id for x in store.expansions()] == [nodes[0], nodes[1]]
        iterations = json.loads(store.get_meta(MetaKey.POLICY_STATE))["iterations"]
    assert iterations["2"]["base"] == nodes[1] and iterations["2"]["rewriter"] == nodes[0]
    assert f"rewrite 2 of node {nodes[1]} by node {nodes[0]}" in (run / "run.log").read_text()
    rows, text = show(run)
    assert rows[2]["schedule"] == f"sica iteration 2: base node {nodes[1]} rewritten by node {nodes[0]}"
    assert rows[2]["schedule"] in text
    page = report(run)
    assert "SICA&#x27;s iterations" in page and rows[2]["schedule"] in page


def test_best_of_n_repeats_the_initial_agent_and_reports_pass_at_k(runs: dict[str, Path]) -> None:
    run = runs["best-of-n"]
    with RunStore.open(run, readonly=True) as store:
        assert len(store.nodes()) == 1 and not store.expansions()
        tasks = [t for t, _ in counted(store, store.nodes()[0].id)]
        assert sorted(tasks) == sorted(["python__transpose"] * 3 + ["python__proverb"] * 2 + ["python__beer-song"] * 2)
        assert store.llm.usage(role="diagnose").calls == 0 and store.llm.usage(role="self_improve").calls == 0
        dirs = [e.log_dir for e in store.evaluations()]
    assert len(set(dirs)) == len(dirs), "each repeat has its own logs"
    rows, text = show(run)
    # pass@1: transpose 3/3, the others 0/2 -> mean 1/3; pass@2 the same (k = the fewest attempts, 2)
    assert rows[0]["schedule"].startswith("best-of-n: pass@1 0.333 ± ") and "pass@2 0.333" in rows[0]["schedule"]
    assert rows[0]["schedule"] in text and text.count("<- FINAL") == 1
    page = report(run)
    assert "pass@k, Chen et al. 2021" in page
    assert "<td>python__transpose</td><td class=r>3</td><td class=r>3</td><td class=r>1.000</td>" in page


def test_compare_puts_every_policy_in_one_table_by_evaluations_and_dollars(runs: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    done = hgm("compare", *map(str, runs.values()), "--by", "usd", "-o", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    for policy in runs:  # the group: the policy, then the config keys that differ (budget, stages, ...)
        assert f"<td>{policy}, search." in page
    assert "own success rate of the best so far at 7 evaluations" in page
    assert "own success rate of the best so far at $" in page and "dollars spent (known prices)" in page
    assert "archive_best" in page and "pass@1 0.333" in page
    assert hgm("compare", *map(str, runs.values()), "--by", "tokens", "-o", str(out)).returncode != 0
