"""The published baselines against hand-computed cases: DGM's staged schedule, SICA's base agent, pass@k."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hgm.baselines import pass_at_k, pass_at_k_summary, sica_base, stage_tasks
from hgm.cli import app
from hgm.config import SearchConfig, load_config
from hgm.domain import EvalOutcome, EvalStatus, ExpansionOutcome, ExpansionStatus, MetaKey
from hgm.errors import UserError
from hgm.executors.local import LocalExecutor
from hgm.memory_store import MemoryStore
from hgm.policies import Tree
from hgm.search import Search, job_function
from hgm.steering import Action
from hgm.store import RunStore

TASKS = [f"t{i}" for i in range(10)]


def run(config: SearchConfig, solves: dict[int, set[str]], tasks: list[str] = TASKS) -> tuple[MemoryStore, Search]:
    """A search (one worker, in line) where node n solves exactly the tasks in solves[n] and every rewrite
    yields a child."""
    store = MemoryStore()
    store.add_node(None, "root")

    def expand(parent_id: int, expansion_id: int) -> ExpansionOutcome:
        return ExpansionOutcome(ExpansionStatus.COMMITTED, commit=f"c{expansion_id}")

    def evaluate(node_id: int, task_id: str, eval_id: int) -> EvalOutcome:
        return EvalOutcome(EvalStatus.SOLVED if task_id in solves.get(node_id, set()) else EvalStatus.FAILED)

    s = Search(store, config, tasks, LocalExecutor(job_function(expand, evaluate), 1, inline=True))
    s.run()
    return store, s


def evaluated(store: MemoryStore, node: int) -> list[str]:
    return [e.task_id for e in store.evaluations(node)]


def test_stage_tasks_by_count_and_by_name() -> None:
    assert stage_tasks([2, 3], TASKS) == [["t0", "t1"], ["t2", "t3", "t4"], TASKS[5:]]
    named = stage_tasks(["small", "medium"], TASKS, {"small": ["t9", "t1"], "medium": ["t1", "t5", "x"]}.__getitem__)
    assert named == [["t1", "t9"], ["t5"], [t for t in TASKS if t not in ("t1", "t9", "t5")]]
    assert stage_tasks([8, 5], TASKS) == [TASKS[:8], TASKS[8:], []]  # the run's tasks ran out
    with pytest.raises(UserError, match="subset 'medium' has no task"):
        stage_tasks(["small", "medium"], TASKS, {"small": TASKS, "medium": ["t1"]}.__getitem__)
    with pytest.raises(UserError, match="only `hgm run` can look up"):
        stage_tasks(["small"], TASKS)


def dgm(**kw: object) -> SearchConfig:
    return SearchConfig(policy="dgm-paper", dgm_paper={"stages": [2, 3], "selfimprove_size": 2, **kw},
                        max_task_evals=22)


def test_dgm_paper_staged_schedule_by_hand() -> None:
    # Stages: t0-t1, then t2-t4 if >= 0.4, then t5-t9 if it reaches the archive's second-best.
    # Root: 1/2 on stage 1 (0.5 >= 0.4), 2/5 after stage 2 (nobody else in the archive: no bar), all 10:
    # solves t0, t2, t5..t9 -> 7/10. Generation 1 = two rewrites of the root (the only archive agent):
    # child 2 solves everything (its bar for the rest: the root's 0.7, the archive's only agent);
    # child 3 solves nothing: 0/2 < 0.4 after stage 1, stopped. 10 + 10 + 2 = 22 evaluations.
    store, s = run(dgm(), {1: {"t0", "t2", "t5", "t6", "t7", "t8", "t9"}, 2: set(TASKS)})
    assert evaluated(store, 1) == TASKS and evaluated(store, 2) == TASKS and evaluated(store, 3) == ["t0", "t1"]
    assert [x.parent_id for x in store.expansions()] == [1, 1]
    sched = {int(k): v for k, v in json.loads(store.get_meta(MetaKey.POLICY_STATE))["schedule"].items()}
    assert sched[1]["end"] == "completed" and sched[1]["score"] == pytest.approx(0.7)
    assert sched[2]["end"] == "completed" and sched[2]["stage_name"] == "rest"
    assert sched[3]["end"] == "stopped" and sched[3]["stage"] == 0
    assert sched[3]["why"] == "0.000 after stage 1 (2 tasks) < 0.400 (search.dgm_paper.stage_threshold)"
    assert all(sched[i]["archived"] for i in (1, 2, 3))  # keep_all
    assert s.final_agent() == 2  # the archive's best score


def test_dgm_paper_rest_needs_the_second_best_and_keep_better_drops_children() -> None:
    # Root solves t0..t6 (0.7). Child 2 solves t0, t1, t2 (3/5 = 0.6 after stage 2) and must reach the
    # archive's best (only the root is archived: 0.7): it stops before the rest. keep_better: 0.6 >= 0.7 -
    # 0.1, so it is archived; child 3 (0/2) is not.
    root = {f"t{i}" for i in range(7)}
    store, s = run(dgm(archive="keep_better"), {1: root, 2: {"t0", "t1", "t2"}})
    sched = {int(k): v for k, v in json.loads(store.get_meta(MetaKey.POLICY_STATE))["schedule"].items()}
    assert evaluated(store, 2) == TASKS[:5]
    assert sched[2]["end"] == "stopped" and sched[2]["stage"] == 1
    assert sched[2]["why"] == "0.600 after stage 2 (3 tasks) < 0.700 (the archive's best (one archive agent))"
    assert sched[2]["archived"] and not sched[3]["archived"] and "not archived" in sched[3]["why"]
    assert s.policy.archive(s.tree) == {1, 2}
    assert s.final_agent() == 1


def test_dgm_paper_evaluates_the_initial_agent_on_every_stage_unless_told_not_to() -> None:
    store, _ = run(dgm().model_copy(update={"max_task_evals": 10}), {})  # the root solves nothing: 0 < 0.4
    assert evaluated(store, 1) == TASKS
    store, _ = run(dgm(evaluate_initial_fully=False).model_copy(update={"max_task_evals": 10}), {})
    assert evaluated(store, 1)[:2] == ["t0", "t1"] and "t2" not in evaluated(store, 1)  # stopped; its children go on
    sched = json.loads(store.get_meta(MetaKey.POLICY_STATE))["schedule"]
    assert sched["1"]["end"] == "stopped" and sched["1"]["archived"]


def test_dgm_paper_parents_come_from_the_archive_and_the_state_survives_a_reopen() -> None:
    store, s = run(dgm(archive="keep_better").model_copy(update={"max_task_evals": 40}),
                   {1: set(TASKS[:7]), 2: set(TASKS[:3])})
    not_archived = {i for i in s.tree.agents if i not in s.policy.archive(s.tree)}
    assert not_archived and all(x.parent_id not in not_archived for x in store.expansions())
    again = Search(store, s.config, TASKS, LocalExecutor(job_function(None, None), 1, inline=True))  # type: ignore[arg-type]
    assert again.policy.state() == s.policy.state() and again.final_agent() == s.final_agent()


def counts(tree: Tree, agent: int, solved: int, failed: int) -> None:
    for i in range(solved + failed):
        tree.record(agent, i < solved)


def test_sica_base_agent_by_hand() -> None:
    t = Tree(n_tasks=10)
    for i, (s, f) in enumerate([(5, 5), (8, 2), (6, 4), (4, 6)], 1):
        t.add_agent(i, None if i == 1 else 1, None)
        counts(t, i, s, f)
    # best = 2 (0.8); lower bound 0.8 - 1.959964 * sqrt(0.8 * 0.2 / 10) = 0.55210; the most recent agent
    # reaching it is 3 (0.6); 4 (0.4) does not.
    best, base, lower = sica_base(list(t.agents.values()), 0.95)
    assert (best.id, base.id) == (2, 3) and lower == pytest.approx(0.8 - 1.959964 * math.sqrt(0.016), abs=1e-5)
    t2 = Tree(n_tasks=10)
    t2.add_agent(1, None, None)
    t2.add_agent(2, 1, None)
    counts(t2, 1, 10, 0)  # 1.0 on 10 tasks: the interval is [1, 1]; nobody else reaches it
    counts(t2, 2, 9, 1)
    best, base, _ = sica_base(list(t2.agents.values()), 0.95)
    assert best.id == base.id == 1


def test_sica_iterations_evaluate_every_child_on_the_sample_and_the_best_rewrites_the_base() -> None:
    config = SearchConfig(policy="sica", sica={"sample_size": 4}, max_task_evals=16)
    # root 2/4; child 2 (base root, rewritten by itself) 4/4 -> best; child 3: 1/4. Iteration 3: best 2
    # (lower bound 1.0): base = 2. Iteration 4: best 2 again; child 4 solved 0.
    store, s = run(config, {1: {"t0", "t1"}, 2: {"t0", "t1", "t2", "t3"}, 3: {"t0"}})
    for node in s.tree.agents:
        assert evaluated(store, node) == ["t0", "t1", "t2", "t3"]
    assert [x.parent_id for x in store.expansions()] == [1, 2, 2]
    iterations = json.loads(store.get_meta(MetaKey.POLICY_STATE))["iterations"]
    assert iterations["1"] == {"base": 1, "rewriter": 1, "lower_bound": pytest.approx(0.5 - 1.959964 * 0.25, abs=1e-4)}
    assert iterations["2"]["base"] == 2 and iterations["3"]["rewriter"] == 2
    assert s.final_agent() == 2


def test_sica_base_is_rewritten_by_the_best_agent() -> None:
    # root 3/4 (best), child 2: 2/4 reaches 0.75 - 1.96 * sqrt(0.1875 / 4) = 0.326 -> base 2, rewriter 1.
    seen: list[tuple[int, int | None]] = []
    store = MemoryStore()
    store.add_node(None, "root")
    solves = {1: {"t0", "t1", "t2"}, 2: {"t0", "t1"}}

    def prepare(decision: object) -> object:
        if hasattr(decision, "rewriter_id"):
            seen.append((decision.parent_id, decision.rewriter_id))  # type: ignore[attr-defined]
        return decision

    def evaluate(node_id: int, task_id: str, eval_id: int) -> EvalOutcome:
        return EvalOutcome(EvalStatus.SOLVED if task_id in solves.get(node_id, set()) else EvalStatus.FAILED)

    s = Search(store, SearchConfig(policy="sica", max_task_evals=12), TASKS[:4],
               LocalExecutor(job_function(lambda p, e: ExpansionOutcome(ExpansionStatus.COMMITTED, commit=f"c{e}"),
                                          evaluate), 1, inline=True), prepare=prepare)
    s.run()
    assert seen == [(1, None), (2, 1)]


def test_sica_goes_on_when_the_base_agent_can_no_longer_be_rewritten() -> None:
    # Every rewrite of node 2 (the best, 4/4) fails; after 3 (search.max_failed_rewrites_per_parent) the
    # root (2/4: below 2's lower bound of 1.0) is the base that is left, rewritten by node 2.
    store = MemoryStore()
    store.add_node(None, "root")

    def expand(parent_id: int, expansion_id: int) -> ExpansionOutcome:
        if parent_id == 2:
            return ExpansionOutcome(ExpansionStatus.FAILED, reason="no diff")
        return ExpansionOutcome(ExpansionStatus.COMMITTED, commit=f"c{expansion_id}")

    def evaluate(node_id: int, task_id: str, eval_id: int) -> EvalOutcome:
        return EvalOutcome(EvalStatus.SOLVED if node_id == 2 or task_id in ("t0", "t1") else EvalStatus.FAILED)

    s = Search(store, SearchConfig(policy="sica", max_task_evals=12), TASKS[:4],
               LocalExecutor(job_function(expand, evaluate), 1, inline=True))
    s.run()
    assert [x.parent_id for x in store.expansions()] == [1, 2, 2, 2, 1]
    assert json.loads(store.get_meta(MetaKey.POLICY_STATE))["iterations"]["5"]["rewriter"] == 2


def test_best_of_n_repeats_the_initial_agent_round_robin() -> None:
    store, s = run(SearchConfig(policy="best-of-n", max_task_evals=7), {1: {"t1"}}, tasks=TASKS[:3])
    assert not store.expansions() and len(s.tree.agents) == 1
    assert evaluated(store, 1) == ["t0", "t1", "t2", "t0", "t1", "t2", "t0"]
    assert s.tree.agents[1].task_runs == {"t0": 3, "t1": 2, "t2": 2}


def test_pass_at_k_by_hand() -> None:
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)  # 1 - C(7,5)/C(10,5)
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25) and pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 4, 2) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)
    summary = pass_at_k_summary({"a": (4, 2), "b": (4, 0), "c": (5, 5)}, ks=(1, 2, 10))
    assert summary["ks"] == [1, 2, 4]  # k = 10 is more than the fewest attempts (4); 4 = that fewest
    mean, half = summary["overall"][2]
    values = [1 - 1 / 6, 0.0, 1.0]  # a: 1 - C(2,2)/C(4,2)
    assert mean == pytest.approx(sum(values) / 3)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    assert half == pytest.approx(4.302653 * sd / math.sqrt(3), rel=1e-5)  # t(0.975, 2 df)


def test_dgm_paper_resumes_its_generations_and_stages_from_the_run_store(tmp_path: Path) -> None:
    config = load_config(overrides=["search.policy=dgm-paper", "search.dgm_paper.stages=[2, 3]",
                                    "search.max_task_evals=45"]).search
    stages = [set(TASKS[:2]), set(TASKS[:5]), set(TASKS)]  # what an agent has seen once a stage is over
    solves = {1: set(TASKS[:6]), 2: set(TASKS[:4]), 3: {"t1"}, 4: set(TASKS), 5: set(TASKS[:3])}

    def evaluate(node_id: int, task_id: str, eval_id: int) -> EvalOutcome:
        return EvalOutcome(EvalStatus.SOLVED if task_id in solves.get(node_id, set()) else EvalStatus.FAILED)

    def expand(parent_id: int, expansion_id: int) -> ExpansionOutcome:
        return ExpansionOutcome(ExpansionStatus.COMMITTED, commit=f"c{expansion_id}")

    def search(store: RunStore, stop_at: int | None = None) -> Search:
        s = Search(store, config, TASKS, LocalExecutor(job_function(expand, evaluate), 1, inline=True),
                   on_progress=lambda p: s.stop() if stop_at is not None and p.evals_done >= stop_at else None)
        return s

    with RunStore.create(tmp_path / "run", load_config()) as store:
        store.add_node(None, "root")
        first = search(store, stop_at=17)  # in generation 1, child 2 part-way through its stages
        assert not first.run().completed
        saved = json.loads(store.get_meta(MetaKey.POLICY_STATE))
    assert saved["generation"] == 1 and any(r["end"] is None for r in saved["schedule"].values())
    with RunStore.open(tmp_path / "run") as store:
        result = search(store).run()
        assert result.completed and result.evals_done == 45
        final_state = json.loads(store.get_meta(MetaKey.POLICY_STATE))
        schedule = final_state["schedule"]
        assert final_state["generation"] > saved["generation"]
        # decisions taken before the stop are kept as they were (restored, not recomputed later)
        assert all(schedule[k] == r for k, r in saved["schedule"].items() if r["end"] is not None)
        for node in store.nodes():
            seen = [e.task_id for e in store.evaluations(node.id) if e.success is not None]
            rec = schedule[str(node.id)]
            assert len(seen) == len(set(seen)), "no task twice"
            if rec["end"] is not None:  # exactly the stages it reached, after the resume as before
                assert set(seen) == stages[rec["stage"]], (node.id, rec)


def test_show_tree_of_a_simulated_dgm_paper_run_says_which_children_went_on_and_why(tmp_path: Path) -> None:
    # The simulator's children differ in skill: some pass the 0.4 gate after stage 1, some stop there.
    runner = CliRunner()
    run = tmp_path / "run"
    done = runner.invoke(app, ["simulate", "--run-dir", str(run), "--max-task-evals", "150", "--set",
                               "search.policy=dgm-paper", "--set", "search.dgm_paper.stages=[5, 10]", "--set",
                               "search.dgm_paper.selfimprove_size=3"])
    assert done.exit_code == 0, done.output
    rows = json.loads(runner.invoke(app, ["show-tree", str(run), "--format", "json"]).stdout)
    text = runner.invoke(app, ["show-tree", str(run), "--format", "text"], env={"COLUMNS": "400"}).stdout
    children = rows[1:]
    stopped = [r for r in children if ", stopped (" in r["schedule"]]
    went_on = [r for r in children if "went on: " in r["schedule"]]
    assert stopped and went_on
    for r in stopped:  # stage 1's 5 tasks, then the gate: below 0.4
        assert r["evaluated"] == 5 and r["solved"] / 5 < 0.4
        assert "< 0.400 (search.dgm_paper.stage_threshold)" in r["schedule"]
    for r in went_on:  # passed stage 1's gate (its stage 2 may have been cut by the budget)
        assert r["evaluated"] >= 5 and "after stage 1 (5 tasks) reached 0.400 (search.dgm_paper.stage_threshold)" \
            in r["schedule"]
        assert r["schedule"] in text


def test_dgm_paper_leaves_an_agent_a_person_vetoed_alone() -> None:
    # Generation 1 draws the root (the only archive agent) three times; the root is vetoed once its first
    # child exists: the generation's two other slots are drawn again among the archive's other agents.
    store = MemoryStore()
    store.add_node(None, "root")
    vetoed_at: list[tuple[int, int]] = []

    def expand(parent_id: int, expansion_id: int) -> ExpansionOutcome:
        return ExpansionOutcome(ExpansionStatus.COMMITTED, commit=f"c{expansion_id}")

    def evaluate(node_id: int, task_id: str, eval_id: int) -> EvalOutcome:
        return EvalOutcome(EvalStatus.SOLVED if task_id in ("t0", "t1", "t2") else EvalStatus.FAILED)

    def on_progress(p: object) -> None:
        if 2 in s.tree.agents and not vetoed_at:
            vetoed_at.append((max(e.id for e in store.evaluations()), max(x.id for x in store.expansions())))
            store.add_intervention("me", Action.VETO, 1, why="test")

    s = Search(store, dgm(selfimprove_size=3).model_copy(update={"max_task_evals": 40}), TASKS,
               LocalExecutor(job_function(expand, evaluate), 1, inline=True), on_progress=on_progress)
    s.run()
    assert vetoed_at and len(s.tree.agents) > 3
    assert not [e for e in store.evaluations(1) if e.id > vetoed_at[0][0]], "no evaluation of the vetoed root"
    assert not [x for x in store.expansions(1) if x.id > vetoed_at[0][1]], "the vetoed root is no parent again"
