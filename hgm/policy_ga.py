"""`--policy ga`: DARWIN's genetic algorithm as a baseline (its own schedule, the shared budget).

Generations. The survivors start as the initial agent alone. Each generation, every survivor spawns
`search.ga.offspring` rewrites; every new agent is evaluated on the same task sample (the run's
first `search.ga.sample_size` tasks, all of them by default) as its parents were; when the
generation's rewrites and evaluations are over, the top `search.ga.survivors` (K) agents by mean
score over the sample, among the survivors and their new children (elitist, ties: the older
agent), survive into the next generation. The population of a generation is at most
K * (1 + offspring). A rewrite that fails, or is cut by an infra error, leaves its survivor one
child short in that generation. Like every policy, the run stops when its budget of task
evaluations is spent; the final agent is the best mean among the agents evaluated on the whole
sample.
"""

from __future__ import annotations

from typing import Any

from hgm.config import SearchConfig
from hgm.policies import WAIT, Agent, Decide, EvalStep, ExpandStep, Policy, Step, Tree


def _mean(a: Agent) -> float:
    return a.own_successes / a.evals if a.evals else 0.0


class GAPolicy(Policy):
    """DARWIN's GA (see the module docstring); its state is the generation, the survivors and what
    each survivor has spawned in it."""

    name = "ga"
    default_final_rule = "archive_best"

    def __init__(self, config: SearchConfig, tasks: list[str] | None = None,
                 stages: list[list[str]] | None = None) -> None:
        super().__init__(config, tasks, stages)
        size = config.ga.sample_size
        self.sample = self.tasks[:size] if size else list(self.tasks)
        self.generation = 0
        self.survivors: list[int] = []
        self.floor = 0
        """Agents with an id above this were born in the current generation."""
        self.spawned: dict[str, int] = {}
        self.history: list[dict[str, Any]] = []
        """Per finished generation: its survivors and their mean scores."""

    def state(self) -> dict[str, Any]:
        return {"generation": self.generation, "survivors": self.survivors, "floor": self.floor,
                "spawned": self.spawned, "history": self.history}

    def restore(self, state: dict[str, Any] | None, tree: Tree) -> None:
        if state:
            self.generation, self.survivors, self.floor = state["generation"], state["survivors"], state["floor"]
            self.spawned, self.history = state["spawned"], state["history"]

    def archive(self, tree: Tree) -> set[int]:
        return {a.id for a in tree.agents.values() if a.evals and self._evaluated(a)}

    def _evaluated(self, a: Agent) -> bool:
        return not a.evals_in_flight and all(x in a.claimed_tasks for x in self.sample)

    def next_step(self, d: Decide) -> Step:
        t = d.tree
        if not self.survivors:
            self.survivors, self.floor = [t.root_id], t.root_id
        members = [
            a for a in sorted(t.agents.values(), key=lambda a: a.id) if a.id in self.survivors or a.id > self.floor
        ]
        for agent in members:
            todo = [x for x in self.sample if x not in agent.claimed_tasks]
            if todo:
                return EvalStep(agent.id, todo[0])
        rewritable = {a.id for a in self.rewritable(t)}
        if d.may_rewrite:
            for s in self.survivors:
                if self.spawned.get(str(s), 0) < self.config.ga.offspring and s in rewritable:
                    self.spawned[str(s)] = self.spawned.get(str(s), 0) + 1
                    return ExpandStep(s)
        if t.evals_in_flight or t.expansions_in_flight:
            return WAIT
        children = [a for a in members if a.id > self.floor]
        if not children and not d.may_rewrite:
            return None
        if not children and not any(s in rewritable for s in self.survivors):
            return None  # no survivor may be rewritten any more, and none was born
        pool = sorted((a for a in members if self._evaluated(a)), key=lambda a: (-_mean(a), a.id))
        self.survivors = [a.id for a in pool[:self.config.ga.survivors]]
        self.history.append({"generation": self.generation, "survivors": self.survivors,
                             "means": [round(_mean(a), 4) for a in pool[:self.config.ga.survivors]]})
        self.generation += 1
        self.floor = max(t.agents)
        self.spawned = {}
        return self.next_step(d)
