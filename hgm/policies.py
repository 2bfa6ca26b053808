"""Clade counters and the search policies (HGM and the baselines), all on one small interface.

`Tree` keeps, per agent, counters of its own results (n_s, n_f) and of its clade's (N_s, N_f); a
result landing on an agent adds along its ancestor path, nothing is rebuilt. A result is a share
of a success s in [0, 1] (hgm.domain.success): n_s += s, n_f += 1 - s, so solved adds (1, 0),
failed (0, 1) and a target's score 0.7 (0.7, 0.3); the counters are whole numbers exactly when
every result is solved or failed.

`Policy` decides expand-vs-sample, whom to expand, whom to evaluate and which agent is final.
All four policies share the expand-vs-sample rule `N**alpha >= |T|` so that they spend the same
budget on the same mix of rewrites and evaluations and differ only in *whom* they pick.

Deliberate choices (where DESIGN.md leaves room):
- |T| counts agents + expansions in flight + rewrites that failed (no child). Otherwise a parent
  whose rewrites keep failing would be re-expanded forever without spending any evaluation.
- No agent eligible as parent (no agent has `parent_min_successes` successes yet): every agent
  is a candidate, with the policy's usual weights (the root alone would starve its own children).
- Baselines evaluate the agent with the fewest evaluations (DGM and SICA evaluate every new
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

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy.special import betaincinv

from hgm.config import SearchConfig
from hgm.errors import UserError


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
    """Tasks with a counted or in-flight evaluation: never evaluated again."""
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


class Policy:
    """Base: the shared expand rule and eligibility; subclasses choose parents, agents, the final."""

    name: ClassVar[str]

    def __init__(self, config: SearchConfig) -> None:
        self.config = config

    def should_expand(self, tree: Tree) -> bool:
        return (tree.evals_done + tree.evals_in_flight) ** self.config.alpha >= tree.size

    def temperature(self, budget: int, used: int) -> float:
        if not self.config.cool_down:
            return 1.0
        return (budget / max(budget - used, 1)) ** self.config.beta

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

    def rank(self, tree: Tree) -> list[int]:
        """Agent ids best first; the first is the final agent. Baselines: own success rate."""
        return [a.id for a in sorted(tree.agents.values(), key=lambda a: (-_success_rate(a), -a.evals, a.id))]


class HGMPolicy(Policy):
    name = "hgm"

    def choose_parent(self, tree: Tree, rng: np.random.Generator, tau: float) -> int:
        c = self.eligible_parents(tree)
        return _thompson(c, (a.clade_successes for a in c), (a.clade_failures for a in c), tau, rng)

    def choose_agent(self, candidates: list[Agent], rng: np.random.Generator, tau: float) -> int:
        c = sorted(candidates, key=lambda a: a.id)
        return _thompson(c, (a.own_successes for a in c), (a.own_failures for a in c), tau, rng)

    def rank(self, tree: Tree) -> list[int]:
        agents = sorted(tree.agents.values(), key=lambda a: a.id)
        bounds = lower_bounds(agents, self.config.final_quantile)
        order = sorted(range(len(agents)), key=lambda i: (-bounds[i], -agents[i].evals, agents[i].id))
        return [agents[i].id for i in order]


class DGMPolicy(Policy):
    """DGM parent choice: weight sigmoid(10*(score-0.5)) / (1 + children), score = own success rate."""

    name = "dgm"

    def choose_parent(self, tree: Tree, rng: np.random.Generator, tau: float) -> int:
        c = self.eligible_parents(tree)
        score = np.array([_success_rate(a) for a in c])
        children = np.array([len(a.children) + a.expansions_in_flight for a in c], dtype=float)
        w = 1 / (1 + np.exp(-10 * (score - 0.5))) / (1 + children)
        return c[int(rng.choice(len(c), p=w / w.sum()))].id


class GreedyPolicy(Policy):
    """SICA-like: always rewrite the best agent so far by own success rate."""

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


POLICIES: dict[str, type[Policy]] = {p.name: p for p in (HGMPolicy, DGMPolicy, GreedyPolicy, RandomPolicy)}


def make_policy(config: SearchConfig) -> Policy:
    if config.policy not in POLICIES:
        raise UserError(f"unknown search policy {config.policy!r}; known: {', '.join(POLICIES)}")
    return POLICIES[config.policy](config)
