"""Policies on hand-computed trees, and the scheduler over quick fake expand/evaluate callables."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from hgm.config import SearchConfig, load_config
from hgm.domain import DispatchState, EvalOutcome, EvalStatus, ExpansionOutcome, ExpansionStatus, JobKind, MetaKey
from hgm.errors import InfraErrorLimit, RewriteLimit, SearchExhausted, UserError
from hgm.executors.local import LocalExecutor
from hgm.memory_store import MemoryStore
from hgm.policies import DGMPolicy, GreedyPolicy, HGMPolicy, RandomPolicy, Tree, lower_bounds
from hgm.search import POLICIES, Search, job_function, make_policy
from hgm.store import RunStore


def hand_tree() -> Tree:
    """root(1) -> a(2) -> c(4); root -> b(3).  Own results: root 1/1, a 2/0, b 0/3, c 1/1 (s/f)."""
    t = Tree(n_tasks=10)
    t.add_agent(1, None, "r")
    t.add_agent(2, 1, "a")
    t.add_agent(3, 1, "b")
    t.add_agent(4, 2, "c")
    for agent, solved in [(1, True), (1, False), (2, True), (2, True), (3, False), (3, False), (3, False),
                          (4, True), (4, False)]:
        t.record(agent, solved)
    return t


def cfg(**kw) -> SearchConfig:
    return SearchConfig(**kw)


def test_clade_counters_by_hand() -> None:
    t = hand_tree()
    own = {i: (a.own_successes, a.own_failures) for i, a in t.agents.items()}
    clade = {i: (a.clade_successes, a.clade_failures) for i, a in t.agents.items()}
    assert own == {1: (1, 1), 2: (2, 0), 3: (0, 3), 4: (1, 1)}
    assert clade == {1: (4, 5), 2: (3, 1), 3: (0, 3), 4: (1, 1)}
    assert t.evals_done == 9 and t.size == 4


def test_expand_rule_counts_in_flight_work() -> None:
    p = HGMPolicy(cfg(alpha=0.5))
    t = Tree(n_tasks=10)
    t.add_agent(1, None, None)
    t.add_agent(2, 1, None)
    t.evals_done = 3
    assert not p.should_expand(t)  # 3**0.5 = 1.73 < 2
    t.evals_in_flight = 1
    assert p.should_expand(t)  # (3+1)**0.5 = 2 >= 2
    t.expansions_in_flight = 1
    assert not p.should_expand(t)  # |T| = 2 agents + 1 expansion in flight
    t.expansions_in_flight, t.failed_expansions = 0, 1
    assert not p.should_expand(t)  # failed rewrites count in |T| too (documented choice)


def test_temperature_cool_down() -> None:
    assert HGMPolicy(cfg()).temperature(100, 75) == 1.0
    assert HGMPolicy(cfg(cool_down=True, beta=0.5)).temperature(100, 75) == pytest.approx(2.0)  # (100/25)**0.5
    assert HGMPolicy(cfg(cool_down=True, beta=1.0)).temperature(100, 100) == pytest.approx(100.0)  # b floored at 1


def _p_first_beats(a1: float, b1: float, a2: float, b2: float) -> float:
    """P(X > Y) for X ~ Beta(a1, b1), Y ~ Beta(a2, b2)."""
    return integrate.quad(lambda x: stats.beta.pdf(x, a1, b1) * stats.beta.cdf(x, a2, b2), 0, 1)[0]


def _frequency(choose, n: int = 6000) -> dict[int, float]:
    rng = np.random.default_rng(1)
    picks = [choose(rng) for _ in range(n)]
    return {k: picks.count(k) / n for k in set(picks)}


def two_agents() -> Tree:
    """root(1) with own 0/1; child(2) with own 0/0 and a child(3) with own 1/0.

    Clade of 2 is 1/0, its own record 0/0: the two posteriors differ."""
    t = Tree(n_tasks=5)
    t.add_agent(1, None, None)
    t.add_agent(2, 1, None)
    t.add_agent(3, 2, None)
    t.record(1, False)
    t.record(3, True)
    return t


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_hgm_parent_posterior_is_beta_of_clade_counts(tau: float) -> None:
    t = two_agents()
    p = HGMPolicy(cfg(parent_min_successes=0))
    # Candidates 1: clade 1/1 -> Beta(2tau, 2tau); 2: clade 1/0 -> Beta(2tau, tau); 3: own = clade 1/0.
    freq = _frequency(lambda rng: p.choose_parent(t, rng, tau))
    # P(agent 1 wins) = P(X1 > max(X2, X3)); compute by integration.
    def f(x: float) -> float:
        return stats.beta.pdf(x, 2 * tau, 2 * tau) * stats.beta.cdf(x, 2 * tau, tau) ** 2

    expected_1 = integrate.quad(f, 0, 1)[0]
    assert freq.get(1, 0) == pytest.approx(expected_1, abs=0.02)
    assert freq[2] == pytest.approx((1 - expected_1) / 2, abs=0.02)


def test_hgm_sample_posterior_is_beta_of_own_counts() -> None:
    t = two_agents()
    p = HGMPolicy(cfg())
    candidates = [t.agents[1], t.agents[2]]  # own 0/1 -> Beta(1, 2); own 0/0 -> Beta(1, 1)
    freq = _frequency(lambda rng: p.choose_agent(candidates, rng, 1.0))
    assert freq[2] == pytest.approx(_p_first_beats(1, 1, 1, 2), abs=0.02)  # = 2/3 by hand
    assert _p_first_beats(1, 1, 1, 2) == pytest.approx(2 / 3)


def test_parent_eligibility_and_fallback() -> None:
    t = hand_tree()
    p = HGMPolicy(cfg(parent_min_successes=2))
    assert [a.id for a in p.eligible_parents(t)] == [2]  # only a solved two tasks
    assert {p.choose_parent(t, np.random.default_rng(s), 1.0) for s in range(20)} == {2}
    none = HGMPolicy(cfg(parent_min_successes=5))
    assert [a.id for a in none.eligible_parents(t)] == [1, 2, 3, 4]  # nobody eligible: everybody is


def test_dgm_parent_weights() -> None:
    t = Tree(n_tasks=5)
    t.add_agent(1, None, None)
    t.add_agent(2, 1, None)  # gives agent 1 one child
    t.record(1, True)
    t.record(1, False)  # agent 1: score 0.5, 1 child -> 0.5 / 2 = 0.25
    t.record(2, True)  # agent 2: score 1.0, no child -> sigmoid(5) = 0.99331
    freq = _frequency(lambda rng: DGMPolicy(cfg()).choose_parent(t, rng, 1.0))
    w2 = 1 / (1 + np.exp(-5))
    assert freq[2] == pytest.approx(w2 / (w2 + 0.25), abs=0.02)  # 0.7989


def test_greedy_and_random_parents() -> None:
    t = hand_tree()
    assert GreedyPolicy(cfg()).choose_parent(t, np.random.default_rng(0), 1.0) == 2  # a: 2/2 solved
    freq = _frequency(lambda rng: RandomPolicy(cfg()).choose_parent(t, rng, 1.0), n=4000)
    assert set(freq) == {1, 2, 3, 4} and all(abs(v - 0.25) < 0.03 for v in freq.values())


def test_baselines_evaluate_the_least_evaluated_agent() -> None:
    t = hand_tree()
    picks = {DGMPolicy(cfg()).choose_agent(list(t.agents.values()), np.random.default_rng(s), 1.0) for s in range(30)}
    assert picks == {1, 2, 4}  # 2 evaluations each; b has 3


def test_final_choice_by_lower_quantile() -> None:
    t = Tree(n_tasks=20)
    t.add_agent(1, None, None)
    t.add_agent(2, 1, None)
    t.record(1, True)  # 1/1: BetaPPF(0.01, 2, 1) = sqrt(0.01) = 0.1
    for i in range(10):
        t.record(2, i < 8)  # 8/10: BetaPPF(0.01, 9, 3) ~ 0.43
    bounds = lower_bounds([t.agents[1], t.agents[2]], 0.01)
    assert bounds[0] == pytest.approx(0.1)
    assert bounds[1] == pytest.approx(stats.beta.ppf(0.01, 9, 3))
    assert HGMPolicy(cfg()).rank(t) == [2, 1]
    assert GreedyPolicy(cfg()).rank(t) == [1, 2]  # best own success rate: the lucky 1/1


def test_policies_by_name() -> None:
    assert set(POLICIES) == {"hgm", "dgm", "greedy", "random", "dgm-paper", "sica", "best-of-n", "ga"}
    assert isinstance(make_policy(cfg(policy="dgm")), DGMPolicy)
    with pytest.raises(UserError, match="known: hgm, dgm, greedy, random, dgm-paper, sica, best-of-n"):
        make_policy(SearchConfig.model_construct(policy="nope"))


# -- the scheduler -------------------------------------------------------------------------


class Fake:
    """Quick deterministic callables that also check the scheduler's promises while it runs."""

    def __init__(self, budget: int, fail_every: int = 0, infra_every: int = 0, sleep: float = 0.0,
                 repeats: bool = False) -> None:
        """`repeats`: the policy may evaluate a (node, task) pair more than once (best-of-n), even at once."""
        self.budget, self.fail_every, self.infra_every, self.sleep = budget, fail_every, infra_every, sleep
        self.repeats = repeats
        self.lock = threading.Lock()
        self.running: set[tuple[int, str, int]] = set()
        self.counted = 0
        self.violations: list[str] = []

    def expand(self, parent_id: int, expansion_id: int) -> ExpansionOutcome:
        time.sleep(self.sleep)
        if self.fail_every and expansion_id % self.fail_every == 0:
            return ExpansionOutcome(ExpansionStatus.FAILED, reason="no diff")
        return ExpansionOutcome(ExpansionStatus.COMMITTED, commit=f"c{expansion_id}")

    def evaluate(self, node_id: int, task_id: str, eval_id: int) -> EvalOutcome:
        with self.lock:
            if any(r[:2] == (node_id, task_id) for r in self.running) and not self.repeats:
                self.violations.append(f"({node_id}, {task_id}) evaluated twice at once")
            if self.counted + len(self.running) + 1 > self.budget:
                self.violations.append(f"eval {eval_id} started beyond the budget")
            self.running.add((node_id, task_id, eval_id))
        time.sleep(self.sleep)
        infra = bool(self.infra_every) and eval_id % self.infra_every == 0
        with self.lock:
            self.running.discard((node_id, task_id, eval_id))
            self.counted += not infra
        if infra:
            raise OSError("sandbox did not start")
        solved = (node_id * 7 + int(task_id[1:]) * 3) % 5 < node_id % 4 + 1
        return EvalOutcome(EvalStatus.SOLVED if solved else EvalStatus.FAILED)


def tasks(n: int) -> list[str]:
    return [f"t{i}" for i in range(n)]


def new_store(store=None):
    store = store or MemoryStore()
    store.add_node(None, "root")
    return store


def check_store_matches_tree(store, search: Search) -> None:
    """No in-flight row, no (node, task) counted twice (unless the policy repeats tasks), counters equal
    sums over the store's rows."""
    evals = store.evaluations()
    assert all(e.status != EvalStatus.IN_FLIGHT for e in evals)
    counted = [e for e in evals if e.status in (EvalStatus.SOLVED, EvalStatus.FAILED, EvalStatus.EMPTY_PATCH)]
    if not search.policy.repeats_tasks:
        assert len({(e.node_id, e.task_id) for e in counted}) == len(counted)
    parent = {n.id: n.parent_id for n in store.nodes()}
    for agent in search.tree.agents.values():
        own = [e for e in counted if e.node_id == agent.id]
        assert agent.own_successes == sum(e.status == EvalStatus.SOLVED for e in own)
        assert agent.own_failures == len(own) - agent.own_successes

        clade = [e for e in counted if in_clade(e.node_id, agent.id, parent)]
        assert agent.clade_successes == sum(e.status == EvalStatus.SOLVED for e in clade)
        assert agent.clade_failures == len(clade) - agent.clade_successes


def in_clade(node: int | None, top: int, parent: dict[int, int | None]) -> bool:
    while node is not None:
        if node == top:
            return True
        node = parent[node]
    return False


def local(expand, evaluate, workers: int = 1) -> LocalExecutor:
    return LocalExecutor(job_function(expand, evaluate), workers)


def run_search(config: SearchConfig, fake: Fake, n_tasks: int = 6, store=None, **kw):
    store = new_store(store)
    s = Search(store, config, tasks(n_tasks), local(fake.expand, fake.evaluate, config.workers), **kw)
    return store, s, s.run()


def test_budget_is_exact_and_infra_errors_are_recorded_not_counted() -> None:
    fake = Fake(budget=40, fail_every=3, infra_every=4)
    store, s, result = run_search(cfg(max_task_evals=40, initial_expansions=2), fake)
    evals = store.evaluations()
    infra = [e for e in evals if e.status == EvalStatus.INFRA_ERROR]
    assert result.completed and result.evals_done == 40 and len(evals) - len(infra) == 40
    assert infra and all(e.error_type == "OSError" and "sandbox did not start" in e.error for e in infra)
    assert "Traceback" in infra[0].error
    assert s.infra_errors == len(infra) and not fake.violations
    assert any(x.status == ExpansionStatus.FAILED for x in store.expansions())
    check_store_matches_tree(store, s)


def test_initial_evals_then_initial_expansions_of_the_root() -> None:
    store, _, _ = run_search(cfg(max_task_evals=20, initial_evals=3, initial_expansions=4), Fake(20))
    first_evals = store.evaluations()[:3]
    assert [e.node_id for e in first_evals] == [1, 1, 1]
    assert [x.parent_id for x in store.expansions()[:4]] == [1, 1, 1, 1]


def test_w1_is_reproducible_from_the_seed() -> None:
    def trace(seed: int):
        store, _, r = run_search(cfg(max_task_evals=60, seed=seed, eval_random_level=0.5), Fake(60))
        return [(e.node_id, e.task_id, e.status) for e in store.evaluations()], r.final_agent

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)


def test_consecutive_infra_errors_stop_the_run_with_a_clear_error() -> None:
    fake = Fake(budget=50, infra_every=1)  # every evaluation's sandbox fails
    with pytest.raises(InfraErrorLimit, match="5 infra errors in a row .*OSError: sandbox did not start"):
        run_search(cfg(max_task_evals=50, initial_expansions=0), fake)


def test_finalists_are_reevaluated_within_the_budget() -> None:
    store, s, result = run_search(cfg(max_task_evals=60, finalists=2, finalist_evals=4), Fake(60), n_tasks=40)
    assert result.evals_done == 60
    finalists = {int(k): v for k, v in __import__("json").loads(store.get_meta(MetaKey.FINALISTS)).items()}
    assert len(finalists) == 2
    last8 = store.evaluations()[-8:]
    assert sorted({e.node_id for e in last8}) == sorted(finalists)
    assert all(s.tree.agents[i].evals == target for i, target in finalists.items())
    assert result.final_agent in finalists


def test_stop_and_resume_from_the_store(tmp_path: Path) -> None:
    config = load_config(overrides=["search.max_task_evals=50", "search.workers=2"])
    store = new_store(RunStore.create(tmp_path / "run", config))
    fake = Fake(budget=50, sleep=0.001)
    s = Search(store, config.search, tasks(8), local(fake.expand, fake.evaluate, 2),
               on_progress=lambda p: s.stop() if p.evals_done >= 15 else None)
    first = s.run()
    assert not first.completed and 15 <= first.evals_done < 50
    before = {i: (a.own_successes, a.own_failures, a.clade_successes, a.clade_failures)
              for i, a in s.tree.agents.items()}
    assert all(e.status != EvalStatus.IN_FLIGHT for e in store.evaluations())  # stop() let work in flight finish
    store.close()
    store = RunStore.open(tmp_path / "run")
    again = Search(store, store.config.search, tasks(8), local(fake.expand, fake.evaluate, 2))
    assert {i: (a.own_successes, a.own_failures, a.clade_successes, a.clade_failures)
            for i, a in again.tree.agents.items()} == before
    result = again.run()
    assert result.completed and result.evals_done == 50
    assert store.get_meta(MetaKey.FINAL_AGENT) == str(result.final_agent)
    check_store_matches_tree(store, again)
    assert not fake.violations


def test_progress_snapshot() -> None:
    seen = []
    run_search(cfg(max_task_evals=12, initial_expansions=1), Fake(12), on_progress=seen.append)
    last = seen[-1]
    assert (last.evals_done, last.evals_budget, last.evals_in_flight, last.phase) == (12, 12, 0, "search")
    assert last.best_successes + last.best_failures >= 1 and 0 < last.best_lower_bound < 1


def test_a_bug_in_the_harness_propagates() -> None:
    def bad_evaluate(node_id: int, task_id: str, eval_id: int):
        return "solved"  # not an EvalOutcome: a bug, not an infra error

    with pytest.raises(AssertionError, match="evaluate returned"):
        Search(new_store(), cfg(max_task_evals=5, initial_expansions=0), tasks(3),
               local(Fake(5).expand, bad_evaluate)).run()


# -- properties ----------------------------------------------------------------------------


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 1000), st.booleans()), max_size=80))
def test_clade_counts_equal_subtree_sums(events) -> None:
    t = Tree(n_tasks=1)
    t.add_agent(0, None, None)
    for is_child, pick, solved in events:
        target = sorted(t.agents)[pick % len(t.agents)]
        if is_child:
            t.add_agent(len(t.agents), target, None)
        else:
            t.record(target, solved)

    def subtree(i: int) -> tuple[int, int]:
        sums = [subtree(c) for c in t.agents[i].children]
        a = t.agents[i]
        return a.own_successes + sum(s for s, _ in sums), a.own_failures + sum(f for _, f in sums)

    for i, a in t.agents.items():
        assert (a.clade_successes, a.clade_failures) == subtree(i)
    assert t.evals_done == sum(a.evals for a in t.agents.values())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workers=st.integers(1, 3), budget=st.integers(1, 40), n_tasks=st.integers(1, 6),
       policy=st.sampled_from(sorted(POLICIES)), alpha=st.sampled_from([0.3, 0.6, 0.9]),
       fail_every=st.sampled_from([0, 2, 3]), infra_every=st.sampled_from([0, 3, 5]),
       initial_expansions=st.integers(0, 3), initial_evals=st.integers(0, 3),
       random_level=st.sampled_from([0.0, 0.5, 1.0]), seed=st.integers(0, 10),
       finalists=st.integers(0, 2), finalist_evals=st.integers(0, 3))
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_scheduler_keeps_budget_and_never_repeats_a_pair(store_kind, workers, budget, n_tasks, policy, alpha,
                                                         fail_every, infra_every, initial_expansions, initial_evals,
                                                         random_level, seed, finalists, finalist_evals) -> None:
    search_budget = budget - finalists * finalist_evals
    assume(search_budget >= 1)
    config = cfg(workers=workers, max_task_evals=budget, policy=policy, alpha=alpha,
                 initial_expansions=initial_expansions, initial_evals=initial_evals,
                 eval_random_level=random_level, seed=seed, max_consecutive_infra_errors=1000,
                 finalists=finalists, finalist_evals=finalist_evals, max_consecutive_failed_rewrites=1000,
                 dgm_paper={"stages": [1] if n_tasks < 3 else [1, 1]})
    fake = Fake(budget, fail_every=fail_every, infra_every=infra_every, sleep=0.0005 if workers > 1 else 0,
                repeats=POLICIES[policy].repeats_tasks)
    with tempfile.TemporaryDirectory(prefix="hgm-test-search-") as tmp:
        store = RunStore.create(Path(tmp) / "run", load_config()) if store_kind == "sqlite" else None
        try:
            store, s, result = run_search(config, fake, n_tasks=n_tasks, store=store)
            _check_scheduler_invariants(store, s, result, fake, budget, search_budget, finalists * finalist_evals)
        finally:
            if store_kind == "sqlite":
                store.close()


def _check_scheduler_invariants(store, s, result, fake, budget, search_budget, finalist_budget) -> None:
    assert result.evals_done == fake.counted
    assert search_budget <= result.evals_done <= budget  # finalists may run out of unseen tasks
    if not finalist_budget:
        assert result.evals_done == budget
    assert not fake.violations
    check_store_matches_tree(store, s)
    assert s.tree.evals_in_flight == 0 and s.tree.expansions_in_flight == 0
    assert all(d.state == DispatchState.DONE for d in store.dispatches())
    assert len(store.dispatches()) == len(store.evaluations()) + len(store.expansions())


def test_expansion_infra_errors_are_recorded_and_initial_expansions_redone() -> None:
    fake = Fake(budget=10)
    calls = []

    def flaky_expand(parent_id: int, expansion_id: int) -> ExpansionOutcome:
        calls.append(expansion_id)
        if len(calls) <= 2:
            raise ConnectionError("LLM gateway down")
        return fake.expand(parent_id, expansion_id)

    store = new_store()
    Search(store, cfg(max_task_evals=10, initial_expansions=2), tasks(5), local(flaky_expand, fake.evaluate)).run()
    first = store.expansions()[:4]
    assert [(x.parent_id, x.status) for x in first] == [(1, ExpansionStatus.INFRA_ERROR)] * 2 + [
        (1, ExpansionStatus.COMMITTED)] * 2
    assert first[0].error_type == "ConnectionError" and "LLM gateway down" in first[0].error


def test_a_store_with_work_in_flight_must_be_reopened_first() -> None:
    store = new_store()
    store.start_evaluation(1, "t0")
    with pytest.raises(ValueError, match="open it writable first"):
        Search(store, cfg(), tasks(3), local(Fake(5).expand, Fake(5).evaluate))


# -- exactly once, lost workers, deadlines ---------------------------------------------------


class Unreliable(LocalExecutor):
    """A local executor whose deliveries misbehave the way a cluster's can: every result delivered
    twice (`duplicate`), the first attempt of some jobs reported lost while its result still arrives
    later (`lose`)."""

    def __init__(self, run, slots: int, *, duplicate: bool = False, lose=lambda key: False) -> None:
        super().__init__(run, slots)
        self.duplicate, self.lose = duplicate, lose

    def wait(self, timeout):
        out = []
        for d in super().wait(timeout):
            if self.lose(d.key):  # reported lost; its real result turns up right after the retry was sent
                out += [type(d)(d.key, lost="node 127.0.0.1 died"), d]
                continue
            out += [d, d] if self.duplicate else [d]
        return out


def test_a_result_delivered_twice_is_committed_once() -> None:
    fake = Fake(budget=30, fail_every=3)
    store = new_store()
    s = Search(store, cfg(max_task_evals=30, workers=3), tasks(8),
               Unreliable(job_function(fake.expand, fake.evaluate), 3, duplicate=True))
    result = s.run()
    assert result.evals_done == 30 == fake.counted
    jobs = len(store.evaluations()) + len(store.expansions())
    assert s.dropped_results == jobs, "every second delivery was dropped"
    check_store_matches_tree(store, s)
    assert store.finish_evaluation(store.evaluations()[0].id, EvalOutcome(EvalStatus.SOLVED)) is False


def test_a_lost_worker_redoes_the_job_and_a_late_result_is_dropped() -> None:
    fake = Fake(budget=20)
    store = new_store()
    def lose(key):
        return key.attempt == 1 and key.row_id % 3 == 0

    s = Search(store, cfg(max_task_evals=20, workers=2), tasks(6),
               Unreliable(job_function(fake.expand, fake.evaluate), 2, lose=lose))
    result = s.run()
    assert result.completed and result.evals_done == 20
    lost = [d for d in store.dispatches() if d.state == DispatchState.LOST]
    assert lost and s.redispatched == len(lost)
    for d in lost:
        again = [x for x in store.dispatches(d.kind) if x.row_id == d.row_id and x.attempt == 2]
        assert [x.state for x in again] == [DispatchState.DONE], "redone once, as attempt 2"
        assert "node 127.0.0.1 died" in d.reason
    assert s.dropped_results == len(lost), "each lost attempt's late result was dropped"
    counted = [e for e in store.evaluations() if e.status != EvalStatus.INFRA_ERROR]
    assert len(counted) == 20 and fake.counted == 20 + sum(d.kind == JobKind.EVAL for d in lost)
    check_store_matches_tree(store, s)


def test_a_job_lost_every_time_is_an_infra_error_not_a_failure() -> None:
    fake = Fake(budget=6)
    store = new_store()
    s = Search(store, cfg(max_task_evals=6, initial_expansions=0, max_consecutive_infra_errors=50), tasks(6),
               Unreliable(job_function(fake.expand, fake.evaluate), 1,
                          lose=lambda key: key.kind == JobKind.EVAL and key.row_id == 1),
               max_attempts=2)
    assert s.run().evals_done == 6
    first = store.evaluations()[0]
    assert (first.status, first.error_type) == (EvalStatus.INFRA_ERROR, "WorkerLost")
    assert [d.state for d in store.dispatches(JobKind.EVAL) if d.row_id == 1] == [
        DispatchState.LOST,
        DispatchState.DONE,
    ]


def test_a_job_past_its_deadline_is_cancelled_and_booked_as_infra() -> None:
    fake = Fake(budget=4)
    release = threading.Event()

    def evaluate(node_id: int, task_id: str, eval_id: int) -> EvalOutcome:
        if eval_id == 1:
            release.wait(30)  # hangs until the test lets it go: far past its deadline
        return fake.evaluate(node_id, task_id, eval_id)

    store = new_store()
    s = Search(store, cfg(max_task_evals=4, initial_expansions=0, workers=2), tasks(6),
               local(fake.expand, evaluate, 2), deadlines={JobKind.EVAL: 0.5})
    result = s.run()
    release.set()
    assert result.evals_done == 4
    first = store.evaluations()[0]
    assert (first.status, first.error_type) == (EvalStatus.INFRA_ERROR, "DeadlineExceeded")
    assert "0.5 s deadline" in first.error
    time.sleep(0.2)
    assert s.executor.wait(1.0), "the hung job's result arrived after all ..."
    check_store_matches_tree(store, s)  # ... and was never committed


# -- bounded rewrites ------------------------------------------------------------------------


def always_failing_expand(parent_id: int, expansion_id: int) -> ExpansionOutcome:
    return ExpansionOutcome(ExpansionStatus.FAILED, error_type="DiagnosisFailed",
                            reason=f"diagnosis failed: malformed answer (rewrite {expansion_id})")


def test_k_failed_rewrites_in_a_row_stop_the_run_with_the_reasons() -> None:
    store = new_store()
    fake = Fake(budget=100)
    config = cfg(max_task_evals=100, initial_evals=3, initial_expansions=2, max_consecutive_failed_rewrites=7,
                 max_failed_rewrites_per_parent=100)
    with pytest.raises(RewriteLimit, match=r"7 rewrites failed in a row .*malformed answer \(rewrite 7\)") as e:
        Search(store, config, tasks(3), local(always_failing_expand, fake.evaluate)).run()
    assert "resume" in str(e.value)
    assert len(store.expansions()) == 7 and len(store.evaluations()) == 3


def test_no_more_than_k_rewrites_in_a_row_even_with_work_in_flight() -> None:
    store = new_store()
    config = cfg(max_task_evals=100, initial_evals=3, initial_expansions=2, max_consecutive_failed_rewrites=5,
                 max_failed_rewrites_per_parent=100, workers=4)
    def slow(parent_id, expansion_id):
        time.sleep(0.02)
        return always_failing_expand(parent_id, expansion_id)

    with pytest.raises(RewriteLimit, match="5 rewrites failed in a row"):
        Search(store, config, tasks(3), local(slow, Fake(100).evaluate, 4)).run()
    assert len(store.expansions()) == 5, "the 4 workers never started a 6th rewrite"


def test_when_nothing_can_be_evaluated_or_rewritten_the_run_ends() -> None:
    store = new_store()
    config = cfg(max_task_evals=100, initial_evals=3, initial_expansions=5, workers=2)
    with pytest.raises(SearchExhausted, match="nothing is left to try after 3 of 100 .*best agent so far is node 1"):
        Search(store, config, tasks(3), local(always_failing_expand, Fake(100).evaluate, 2)).run()
    assert len(store.expansions()) == 3, "the root's rewrites stop after max_failed_rewrites_per_parent"
    assert all(x.status == ExpansionStatus.FAILED for x in store.expansions())


def test_rewrites_in_flight_count_toward_the_per_parent_limit() -> None:
    """Two workers, limit 3: rewrites 1 and 2 fail while 3 is still running; the free worker must
    evaluate instead of starting a 4th rewrite of the root (it did before in-flight ones counted)."""
    evaluating = threading.Event()
    fake = Fake(budget=100)

    def expand(parent_id: int, expansion_id: int) -> ExpansionOutcome:
        if expansion_id == 3:
            assert evaluating.wait(10), "the free worker never evaluated while rewrite 3 was running"
        return always_failing_expand(parent_id, expansion_id)

    def evaluate(node_id: int, task_id: str, eval_id: int) -> EvalOutcome:
        evaluating.set()
        return fake.evaluate(node_id, task_id, eval_id)

    store = new_store()
    config = cfg(max_task_evals=100, initial_evals=0, initial_expansions=5, workers=2, max_failed_rewrites_per_parent=3)
    with pytest.raises(SearchExhausted):
        Search(store, config, tasks(3), local(expand, evaluate, 2)).run()
    assert [x.id for x in store.expansions()] == [1, 2, 3], "no 4th rewrite of the root was started"
    assert len(store.evaluations()) == 3


def test_a_parent_with_rewrites_in_flight_is_not_rewritable_past_the_limit() -> None:
    p = HGMPolicy(cfg(max_failed_rewrites_per_parent=3))
    t = Tree(n_tasks=5)
    root = t.add_agent(1, None, None)
    root.failed_rewrites_in_a_row, root.expansions_in_flight = 2, 0
    assert [a.id for a in p.rewritable(t)] == [1]
    root.expansions_in_flight = 1  # 2 failed + 1 that may fail: the limit is reached
    assert p.rewritable(t) == [] and p.eligible_parents(t) == []


def test_a_parent_whose_rewrites_keep_failing_is_no_longer_chosen() -> None:
    fake = Fake(budget=80)

    def expand(parent_id: int, expansion_id: int) -> ExpansionOutcome:  # only the first rewrite succeeds
        return fake.expand(parent_id, expansion_id) if expansion_id == 1 else always_failing_expand(parent_id,
                                                                                                   expansion_id)

    store = new_store()
    config = cfg(max_task_evals=80, initial_expansions=1, max_failed_rewrites_per_parent=2)
    s = Search(store, config, tasks(50), local(expand, fake.evaluate))
    assert s.run().evals_done == 80, "evaluations go on once no agent may be rewritten"
    assert [(x.parent_id, x.status) for x in store.expansions()][0] == (1, ExpansionStatus.COMMITTED)
    for agent in (1, 2):
        after = [x.status for x in store.expansions()[1:] if x.parent_id == agent]
        assert after == [ExpansionStatus.FAILED] * 2, f"node {agent}: two failures, then never chosen again"
        assert s.tree.agents[agent].failed_rewrites_in_a_row == 2
    reopened = Search(store, s.config, tasks(50), local(expand, fake.evaluate))
    assert reopened.tree.agents[2].failed_rewrites_in_a_row == 2, "rebuilt from the store on resume"


def test_with_no_free_slot_for_a_while_the_run_waits_instead_of_ending() -> None:
    class Nodes(LocalExecutor):  # the cluster's nodes are gone, then one comes back
        def __init__(self, run, slots: int) -> None:
            super().__init__(run, slots)
            self.back_at = time.monotonic() + 2.5

        def slots(self) -> int:
            return self._slots if time.monotonic() >= self.back_at else 0

    fake = Fake(budget=5)
    store = new_store()
    result = Search(store, cfg(max_task_evals=5), tasks(5), Nodes(job_function(fake.expand, fake.evaluate), 1)).run()
    assert result.completed and result.evals_done == 5
