"""Clade counters and the search policies (HGM and the baselines), all on one small interface.

`Tree` keeps, per agent, counters of its own results (n_s, n_f) and of its clade's (N_s, N_f); a
result landing on an agent adds along its ancestor path, nothing is rebuilt. A result is a share
of a success s in [0, 1] (hgm.domain.success): n_s += s, n_f += 1 - s, so solved adds (1, 0),
failed (0, 1) and a target's score 0.7 (0.7, 0.3); the counters are whole numbers exactly when
every result is solved or failed.

`Policy` decides what to start next (`next_step`: expand whom, or evaluate whom on what) and
which agent is final (`rank`, by `search.final_rule`). HGM and the selection-only ablations (dgm,
greedy, random) share the expand-vs-sample rule `N**alpha >= |T|` so that they spend the same
budget on the same mix of rewrites and evaluations and differ only in *whom* they pick; the
published baselines (hgm/baselines.py) own their schedule.

Deliberate choices (where DESIGN.md leaves room):
- |T| counts agents + expansions in flight + rewrites that failed (no child). Otherwise a parent
  whose rewrites keep failing would be re-expanded forever without spending any evaluation.
- No agent eligible as parent (no agent has `parent_min_successes` successes yet): every agent
  is a candidate, with the policy's usual weights (the root alone would starve its own children).
- The ablations evaluate the agent with the fewest evaluations (DGM and SICA evaluate every new
  agent on the same tasks) and name the agent with the best own success rate as final; random
  evaluates a uniformly drawn agent.
- empty_patch counts as a failure of the agent; infra_error counts for nothing and frees the pair.
- An agent whose last `max_failed_rewrites_per_parent` rewrites failed is never a parent again
  (every policy): a parent that keeps failing would otherwise keep costing rewrites. Rewrites in
  flight count as if they will fail, so with W workers no parent ever has more outstanding
  (failed + in flight) rewrites than the limit (which also caps the root's parallel initial
  expansions at the limit).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from scipy.special import betaincinv

from hgm.config import SearchConfig


@dataclass
class Agent:
    """One node of the tree with its counters (the paper's n_s, n_f, N_s, N_f)."""

    id: int
    parent_id: int | None
    commit: str | None
    children: list[int] = field(default_factory=list)
    own_successes: float = 0.0
    """n_s: tasks this agent solved (a scored task counts its score)."""
    own_failures: float = 0.0
    """n_f: tasks this agent failed (empty_patch included; a scored task counts 1 - its score)."""
    clade_successes: float = 0.0
    """N_s: n_s summed over the agent and all its descendants."""
    clade_failures: float = 0.0
    """N_f: n_f summed over the agent and all its descendants."""
    evals: int = 0
    """Counted evaluations of this agent (n_s + n_f, as a whole number)."""
    claimed_tasks: set[str] = field(default_factory=set)
    """Tasks with a counted or in-flight evaluation: never evaluated again (unless the policy repeats tasks)."""
    task_runs: Counter[str] = field(default_factory=Counter)
    """Counted and in-flight evaluations per task (more than one only where the policy repeats tasks)."""
    evals_in_flight: int = 0
    expansions_in_flight: int = 0
    failed_rewrites_in_a_row: int = 0
    """Rewrites of this agent that failed since its last committed child (infra errors aside)."""


class Tree:
    """Agents with incremental own / clade counters, plus the in-flight work the decisions count."""

    def __init__(self, n_tasks: int) -> None:
        self.agents: dict[int, Agent] = {}
        self.root_id = -1
        self.n_tasks = n_tasks
        self.evals_done = 0
        self.evals_in_flight = 0
        self.expansions_in_flight = 0
        self.failed_expansions = 0
        self.finished_expansions = 0
        """Rewrites that ended committed or failed (infra errors aside)."""
        self.root_attempts = 0
        """Rewrites of the root started, infra errors aside (the initial expansions)."""

    def add_agent(self, agent_id: int, parent_id: int | None, commit: str | None) -> Agent:
        agent = self.agents[agent_id] = Agent(agent_id, parent_id, commit)
        if parent_id is None:
            self.root_id = agent_id
        else:
            self.agents[parent_id].children.append(agent_id)
        return agent

    def record(self, agent_id: int, success: float) -> None:
        """A counted result (a share of a success in [0, 1]) landed on `agent_id`: add it to its own
        counters and its ancestors' clades."""
        agent = self.agents[agent_id]
        agent.own_successes += success
        agent.own_failures += 1 - success
        agent.evals += 1
        self.evals_done += 1
        node: int | None = agent_id
        while node is not None:
            a = self.agents[node]
            a.clade_successes += success
            a.clade_failures += 1 - success
            node = a.parent_id

    @property
    def size(self) -> int:
        """|T| of the expand rule: agents, expansions in flight and failed rewrites."""
        return len(self.agents) + self.expansions_in_flight + self.failed_expansions

    def evaluable(self) -> list[Agent]:
        return [a for a in self.agents.values() if len(a.claimed_tasks) < self.n_tasks]


def lower_bounds(agents: list[Agent], q: float) -> np.ndarray:
    """BetaPPF(q, 1+n_s, 1+n_f) of each agent's own results."""
    s = np.array([a.own_successes for a in agents], dtype=float)
    f = np.array([a.own_failures for a in agents], dtype=float)
    return betaincinv(1 + s, 1 + f, q)


def _thompson(agents: list[Agent], s: Iterable[float], f: Iterable[float], tau: float, rng: np.random.Generator) -> int:
    a = tau * (1 + np.fromiter(s, float, len(agents)))
    b = tau * (1 + np.fromiter(f, float, len(agents)))
    return agents[int(np.argmax(rng.beta(a, b)))].id


def _success_rate(a: Agent) -> float:
    return a.own_successes / a.evals if a.evals else 0.0


FinalRule = Literal["lower_bound", "mean", "archive_best"]


def best_order(rule: FinalRule, successes: np.ndarray, failures: np.ndarray, quantile: float,
               archive: np.ndarray | None = None) -> np.ndarray:
    """Indices best first by a final-agent rule (see SearchConfig.final_rule); ties: more evaluations,
    then the lower index. `archive` (booleans) marks the policy's archive: archive_best puts its members
    first. Agents without a result come last under every rule."""
    evals = successes + failures
    if rule == "lower_bound":
        score = betaincinv(1 + successes, 1 + failures, quantile)
    else:
        score = np.divide(successes, evals, out=np.zeros(len(evals)), where=evals > 0)
    score = np.where(evals > 0, score, -1.0)
    member = archive if rule == "archive_best" and archive is not None else np.ones(len(evals), dtype=bool)
    return np.lexsort((np.arange(len(evals)), -evals, -score, ~member))


@dataclass(frozen=True)
class ExpandStep:
    """Rewrite `parent_id`'s code into a child."""

    parent_id: int
    rewriter_id: int | None = None
    """The agent whose code does the rewriting (None: the parent rewrites itself, as in HGM and DGM)."""


@dataclass(frozen=True)
class EvalStep:
    """Evaluate `node_id` on a task."""

    node_id: int
    task_id: str | None = None
    """None: one of the agent's unseen tasks, drawn by the scheduler (search.eval_random_level)."""


WAIT = "wait"
"""Step: nothing to start now, but work in flight may change that."""
Step = ExpandStep | EvalStep | str | None
"""What a policy wants next; None: nothing is left to try (the run ends)."""


@dataclass
class Decide:
    """What a policy sees when it decides."""

    tree: Tree
    rng: np.random.Generator
    tau: float
    """Thompson-sampling temperature (cool-down)."""
    may_rewrite: bool
    """False while a new rewrite could be the max_consecutive_failed_rewrites-th failed one in a row."""


class Policy:
    """A search policy: `next_step` decides what to start, `rank` orders agents by the final-agent rule.

    The base class is the shared rule of HGM and the selection-only ablations: evaluate the root
    `initial_evals` times and expand it `initial_expansions` times, then expand iff `N**alpha >= |T|`
    (`choose_parent`), else evaluate (`choose_agent`). A published baseline overrides `next_step` to
    own its schedule (hgm/baselines.py); the budget stays counted in task evaluations. A policy whose
    schedule needs memory keeps it in `state()` (JSON, saved in the run store after each decision,
    handed back to `restore` on resume; nothing is in flight then).
    """

    name: ClassVar[str]
    default_final_rule: ClassVar[FinalRule] = "mean"
    repeats_tasks: ClassVar[bool] = False
    """True: the policy may evaluate an agent on a task it was already evaluated on."""

    def __init__(self, config: SearchConfig, tasks: list[str] | None = None,
                 stages: list[list[str]] | None = None) -> None:
        """`tasks`: the run's task ids, in order; `stages`: the task sets of search.dgm_paper.stages
        resolved by the caller (names of benchmark subsets need the benchmark)."""
        self.config = config
        self.tasks = list(tasks or [])
        self.final_rule: FinalRule = config.final_rule or self.default_final_rule

    def next_step(self, d: Decide) -> Step:
        t, cfg = d.tree, self.config
        root = t.agents[t.root_id]
        if root.evals + root.evals_in_flight < cfg.initial_evals and len(root.claimed_tasks) < t.n_tasks:
            return EvalStep(root.id)
        parents = self.eligible_parents(t) if d.may_rewrite else []
        if t.root_attempts < cfg.initial_expansions and root in parents:
            return ExpandStep(root.id)
        candidates = t.evaluable()
        if parents and (not candidates or self.should_expand(t)):
            return ExpandStep(self.choose_parent(t, d.rng, d.tau))
        if candidates:
            return EvalStep(self.choose_agent(candidates, d.rng, d.tau))
        return WAIT if t.evals_in_flight or t.expansions_in_flight else None

    def update(self, tree: Tree) -> None:
        """Called after every committed result: a policy with a schedule moves it on here."""

    def state(self) -> dict[str, Any] | None:
        return None

    def restore(self, state: dict[str, Any] | None, tree: Tree) -> None:
        """Take back what `state()` returned (None on a new run) once the tree is rebuilt."""

    def should_expand(self, tree: Tree) -> bool:
        return bool((tree.evals_done + tree.evals_in_flight) ** self.config.alpha >= tree.size)

    def temperature(self, budget: int, used: int) -> float:
        if not self.config.cool_down:
            return 1.0
        return float((budget / max(budget - used, 1)) ** self.config.beta)

    def rewritable(self, tree: Tree) -> list[Agent]:
        """Agents with fewer than `max_failed_rewrites_per_parent` rewrites failed since their last
        child plus rewrites in flight (which may fail too)."""
        limit = self.config.max_failed_rewrites_per_parent
        return [a for a in sorted(tree.agents.values(), key=lambda a: a.id)
                if a.failed_rewrites_in_a_row + a.expansions_in_flight < limit]

    def eligible_parents(self, tree: Tree) -> list[Agent]:
        """Rewritable agents with `parent_min_successes`; if none has them, every rewritable agent
        (empty when no agent may be rewritten any more)."""
        agents = self.rewritable(tree)
        eligible = [a for a in agents if a.own_successes >= self.config.parent_min_successes]
        return eligible or agents

    def choose_parent(self, tree: Tree, rng: np.random.Generator, tau: float) -> int:
        raise NotImplementedError

    def choose_agent(self, candidates: list[Agent], rng: np.random.Generator, tau: float) -> int:
        """Baselines: the agent with the fewest evaluations (ties: random)."""
        fewest = min(a.evals + a.evals_in_flight for a in candidates)
        ties = [a.id for a in candidates if a.evals + a.evals_in_flight == fewest]
        return ties[int(rng.integers(len(ties)))]

    def archive(self, tree: Tree) -> set[int]:
        """The agents the archive_best rule chooses among: by default every agent with a result."""
        return {a.id for a in tree.agents.values() if a.evals}

    def rank(self, tree: Tree) -> list[int]:
        """Agent ids best first by this run's final-agent rule; the first is the final agent."""
        agents = sorted(tree.agents.values(), key=lambda a: a.id)
        members = self.archive(tree)
        order = best_order(self.final_rule, np.array([a.own_successes for a in agents], dtype=float),
                           np.array([a.own_failures for a in agents], dtype=float), self.config.final_quantile,
                           np.array([a.id in members for a in agents], dtype=bool))
        return [agents[int(i)].id for i in order]


class HGMPolicy(Policy):
    name = "hgm"
    default_final_rule = "lower_bound"

    def choose_parent(self, tree: Tree, rng: np.random.Generator, tau: float) -> int:
        c = self.eligible_parents(tree)
        return _thompson(c, (a.clade_successes for a in c), (a.clade_failures for a in c), tau, rng)

    def choose_agent(self, candidates: list[Agent], rng: np.random.Generator, tau: float) -> int:
        c = sorted(candidates, key=lambda a: a.id)
        return _thompson(c, (a.own_successes for a in c), (a.own_failures for a in c), tau, rng)


class DGMPolicy(Policy):
    """Selection-only ablation: DGM's parent weight sigmoid(10*(score-0.5)) / (1 + children), score = own
    success rate, inside HGM's budget allocation (DGM as published is `dgm-paper`, hgm/baselines.py)."""

    name = "dgm"

    def choose_parent(self, tree: Tree, rng: np.random.Generator, tau: float) -> int:
        c = self.eligible_parents(tree)
        score = np.array([_success_rate(a) for a in c])
        children = np.array([len(a.children) + a.expansions_in_flight for a in c], dtype=float)
        w = 1 / (1 + np.exp(-10 * (score - 0.5))) / (1 + children)
        return c[int(rng.choice(len(c), p=w / w.sum()))].id


class GreedyPolicy(Policy):
    """Selection-only ablation, SICA-like: always rewrite the best agent so far by own success rate, inside
    HGM's budget allocation (SICA as published is `sica`, hgm/baselines.py)."""

    name = "greedy"

    def choose_parent(self, tree: Tree, rng: np.random.Generator, tau: float) -> int:
        return min(self.eligible_parents(tree), key=lambda a: (-_success_rate(a), -a.evals, a.id)).id


class RandomPolicy(Policy):
    """Uniform parent among all rewritable agents, uniform agent to evaluate."""

    name = "random"

    def choose_parent(self, tree: Tree, rng: np.random.Generator, tau: float) -> int:
        ids = [a.id for a in self.rewritable(tree)]
        return ids[int(rng.integers(len(ids)))]

    def choose_agent(self, candidates: list[Agent], rng: np.random.Generator, tau: float) -> int:
        ids = sorted(a.id for a in candidates)
        return ids[int(rng.integers(len(ids)))]
