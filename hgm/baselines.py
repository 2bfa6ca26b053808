"""The published baselines, each owning its evaluation schedule, and the no-self-modification control.

- `dgm-paper`: the Darwin Gödel Machine (Zhang et al. 2025) as its reference code runs it
  (DGM_outer.py). Generations of `selfimprove_size` parents, drawn with replacement by
  sigmoid(10*(score-0.5)) / (1 + children in the archive) among the archive's agents. The initial
  agent is evaluated on every stage first; every new child goes through the staged evaluation: the
  first stage's tasks; the next named stage only if its success rate so far is at least
  `stage_threshold`; the rest of the run's tasks only if it reaches the archive's second-best
  score. When its schedule ends the agent joins the archive (keep_all) or joins it only if its
  score is at least the initial agent's minus `noise_margin` (keep_better). The next generation
  starts when every child's schedule is over. Final agent: the archive's best score.
- `sica`: the Self-Improving Coding Agent (Robeyns et al. 2025). Iterations: every agent is evaluated
  on the same fixed task sample; then the best agent (highest mean) rewrites the base agent, the
  most recent agent whose mean reaches the best agent's confidence-interval lower bound (`sica_base`).
- `best-of-n`: no self-modification; the initial agent is evaluated on the run's tasks round robin,
  each task again and again, at the same budget. Reported as pass@1 and pass@k per task
  (`pass_at_k`, the unbiased estimator of Chen et al. 2021).

Every policy spends the same budget of task evaluations; rewrites are bounded as for HGM. Where
the reference runs differ from these (no per-generation wall clock, scores from hgm's verdicts,
no cost term in SICA's utility) docs/comparisons.md says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t

from hgm.config import SearchConfig
from hgm.domain import EvaluationRow, ExpansionRow, ExpansionStatus
from hgm.errors import UserError
from hgm.policies import WAIT, Agent, Decide, EvalStep, ExpandStep, Policy, Step, Tree

ArchiveMember = Callable[[int, int, int], bool]
"""member(node id, evaluations used so far, the node's own evaluations so far): in the archive then?"""

REST = "rest"
"""Name of the staged evaluation's last stage: the run's tasks in no named stage."""


def _rate(a: Agent) -> float:
    return a.own_successes / a.evals if a.evals else 0.0


def stage_tasks(spec: Sequence[int | str], tasks: list[str],
                subset: Callable[[str], list[str]] | None = None) -> list[list[str]]:
    """The staged evaluation's task sets: one per entry of `spec` (a count takes that many of the run's
    tasks not yet in a stage, in the run's order; a name takes that benchmark subset, looked up with
    `subset`, within the run's tasks), then the rest of the run's tasks. A stage may be empty (a count
    past the run's tasks, or no rest); a named subset with no task of the run's is a UserError."""
    taken: set[str] = set()
    out: list[list[str]] = []
    for entry in spec:
        if isinstance(entry, int):
            stage = [t for t in tasks if t not in taken][:entry]
        elif subset is None:
            raise UserError(f"search.dgm_paper.stages names the subset {entry!r}, which only `hgm run` can "
                            "look up; give task counts here (e.g. [10, 50])")
        else:
            wanted = set(subset(entry))
            stage = [t for t in tasks if t in wanted and t not in taken]
        if not stage and isinstance(entry, str):  # a count past the run's tasks is an empty stage, skipped
            raise UserError(f"search.dgm_paper.stages: subset {entry!r} has no task of the run's that an earlier "
                            "stage did not take; run on more tasks (e.g. --subset all) or change the stages")
        taken.update(stage)
        out.append(stage)
    return [*out, [t for t in tasks if t not in taken]]


class DGMPaperPolicy(Policy):
    """DGM as published (see the module docstring). State: the generation's parents and each agent's
    schedule record (stage reached, why it stopped, archived or not), saved in the run store."""

    name = "dgm-paper"
    default_final_rule = "archive_best"

    def __init__(self, config: SearchConfig, tasks: list[str] | None = None,
                 stages: list[list[str]] | None = None) -> None:
        super().__init__(config, tasks, stages)
        self.dgm = config.dgm_paper
        self._stages = stages
        self.stage_names = [e if isinstance(e, str) else f"stage {i + 1} ({e} tasks)"
                            for i, e in enumerate(self.dgm.stages)] + [REST]
        self.generation = 0
        self.parents: list[int] = []
        self.generation_start = 0
        """tree.finished_expansions when the generation began."""
        self.schedule: dict[int, dict[str, Any]] = {}
        """node id -> {stage, stage_name, end (None while open, stopped, completed), why, passed (the reasons
        of the gates it passed), score, archived, at_evals, generation}."""

    @property
    def stages(self) -> list[list[str]]:
        """The stages' task ids (resolved when first needed: ranking a stored run needs none)."""
        if self._stages is None:
            self._stages = stage_tasks(self.dgm.stages, self.tasks)
        return self._stages

    def state(self) -> dict[str, Any]:
        return {"generation": self.generation, "parents": self.parents, "generation_start": self.generation_start,
                "stage_names": self.stage_names, "schedule": {str(k): v for k, v in self.schedule.items()}}

    def restore(self, state: dict[str, Any] | None, tree: Tree) -> None:
        if state:
            self.generation, self.parents = state["generation"], state["parents"]
            self.generation_start = state["generation_start"]
            self.schedule = {int(k): v for k, v in state["schedule"].items()}

    def archive(self, tree: Tree) -> set[int]:
        return {i for i, r in self.schedule.items() if r["archived"]}

    def update(self, tree: Tree) -> None:
        """New agents start the schedule; an agent whose stage is fully evaluated passes its gate or stops."""
        for agent in sorted(tree.agents.values(), key=lambda a: a.id):
            rec = self.schedule.setdefault(agent.id, self._record(0))
            if rec["end"] is None:
                self._gate(tree, agent, rec)

    def next_step(self, d: Decide) -> Step:
        t = d.tree
        self.update(t)
        for agent in sorted(t.agents.values(), key=lambda a: a.id):
            rec = self.schedule[agent.id]
            if rec["end"] is None:
                todo = [x for x in self.stages[rec["stage"]] if x not in agent.claimed_tasks]
                if todo:
                    return EvalStep(agent.id, todo[0])
        if any(r["end"] is None for r in self.schedule.values()):
            return WAIT  # a stage's last results are in flight
        issued = t.finished_expansions - self.generation_start + t.expansions_in_flight
        candidates = [a for a in self.rewritable(t) if self.schedule[a.id]["archived"]]
        if issued < len(self.parents):
            # An infra error frees its slot in the count, so the next unissued parent is drawn again.
            if not d.may_rewrite or not candidates:
                return WAIT if t.expansions_in_flight else None
            if self.parents[issued] not in {a.id for a in candidates}:  # its rewrites failed, or a person vetoed it
                self.parents[issued] = self.choose_parents(t, candidates, d.rng)[0]
            return ExpandStep(self.parents[issued])
        if t.expansions_in_flight:
            return WAIT
        if not candidates or not d.may_rewrite:
            return None
        self.parents = self.choose_parents(t, candidates, d.rng)
        self.generation += 1
        self.generation_start = t.finished_expansions
        return ExpandStep(self.parents[0])

    def choose_parents(self, tree: Tree, candidates: list[Agent], rng: np.random.Generator) -> list[int]:
        """`selfimprove_size` parents, with replacement, weight sigmoid(10*(score-0.5)) / (1 + archived children)."""
        archived = self.archive(tree)
        score = np.array([_rate(a) for a in candidates])
        children = np.array([sum(c in archived for c in a.children) for a in candidates], dtype=float)
        w = 1 / (1 + np.exp(-10 * (score - 0.5))) / (1 + children)
        picks = rng.choice(len(candidates), size=self.dgm.selfimprove_size, p=w / w.sum())
        return [candidates[int(i)].id for i in picks]

    def _record(self, stage: int) -> dict[str, Any]:
        return {"stage": stage, "stage_name": self.stage_names[stage], "end": None, "why": "", "passed": [],
                "score": None, "archived": False, "at_evals": None, "generation": self.generation}

    def _gate(self, tree: Tree, agent: Agent, rec: dict[str, Any]) -> None:
        """Once an agent's current stage is fully evaluated: on to the next stage, or its schedule ends."""
        if agent.evals_in_flight or any(x not in agent.claimed_tasks for x in self.stages[rec["stage"]]):
            return
        score, nxt = _rate(agent), rec["stage"] + 1
        rec["score"] = score
        while nxt < len(self.stages) and not self.stages[nxt]:
            nxt += 1  # no rest
        if nxt >= len(self.stages):
            self._end(tree, agent, rec, "completed", f"evaluated on every stage: {score:.3f}")
            return
        if agent.id == tree.root_id and self.dgm.evaluate_initial_fully:
            need, what = 0.0, "the initial agent is evaluated on every stage"
        elif nxt < len(self.stages) - 1:
            need, what = self.dgm.stage_threshold, "search.dgm_paper.stage_threshold"
        else:
            others = sorted((r["score"] for i, r in self.schedule.items() if r["archived"] and i != agent.id),
                            reverse=True)
            if not self.dgm.rest_needs_second_best or not others:
                need, what = 0.0, "no other archive agent" if self.dgm.rest_needs_second_best else "no gate"
            else:
                need, what = others[min(1, len(others) - 1)], "the archive's second-best" if len(others) > 1 \
                    else "the archive's best (one archive agent)"
        if score >= need:
            why = f"{score:.3f} after {rec['stage_name']} reached {need:.3f} ({what})"
            rec.update(stage=nxt, stage_name=self.stage_names[nxt], why=why, passed=[*rec.get("passed", []), why])
        else:
            self._end(tree, agent, rec, "stopped", f"{score:.3f} after {rec['stage_name']} < {need:.3f} ({what})")

    def _end(self, tree: Tree, agent: Agent, rec: dict[str, Any], end: str, why: str) -> None:
        rec.update(end=end, why=why, at_evals=tree.evals_done)
        root = self.schedule.get(tree.root_id, {})
        if agent.id == tree.root_id or self.dgm.archive == "keep_all":
            rec["archived"] = agent.evals > 0
        else:
            rec["archived"] = _rate(agent) >= (root.get("score") or 0.0) - self.dgm.noise_margin
            if not rec["archived"]:
                rec["why"] += f"; not archived: below the initial agent's {root.get('score') or 0:.3f} - " \
                              f"{self.dgm.noise_margin:g} (keep_better)"


def archive_member(config: SearchConfig, state: dict[str, Any] | None) -> ArchiveMember:
    """Archive membership over a run, from its stored policy state (for the report's curves):
    dgm-paper: from the moment its schedule ended, if kept; sica: once evaluated on the whole sample;
    the others: once it has a result."""
    if config.policy == "dgm-paper" and state:
        joined = {int(k): r["at_evals"] for k, r in state["schedule"].items() if r["archived"]}
        return lambda node, used, own: node in joined and joined[node] <= used
    if config.policy == "sica" and state:
        size = len(state["sample"])
        return lambda node, used, own: own >= size
    return lambda node, used, own: own > 0


def schedule_notes(policy: str, state: dict[str, Any] | None, expansions: Sequence[ExpansionRow],
                   evaluations: Sequence[EvaluationRow] = ()) -> dict[int, str]:
    """What each node's policy schedule did, for show-tree and the report: dgm-paper: the stage an agent
    reached and why its staged evaluation stopped (or went on), archived or not; sica: which iteration
    made it, its base agent and the agent that rewrote it; best-of-n: pass@1 and pass@k of the initial agent."""
    notes: dict[int, str] = {}
    if policy == "dgm-paper" and state:
        for k, r in state["schedule"].items():
            end = r["end"] or "in progress"
            kept = "" if r["end"] is None else ("; archived" if r["archived"] else "; not archived")
            went_on = "".join(f"went on: {p}; " for p in r.get("passed", []) if p != r["why"])
            notes[int(k)] = f"staged: {went_on}{r['stage_name']}, {end}" + (f" ({r['why']})" if r["why"] else "") + kept
    elif policy == "sica" and state:
        finished = [x for x in sorted(expansions, key=lambda x: x.id)
                    if x.status in (ExpansionStatus.COMMITTED, ExpansionStatus.FAILED)]
        for k, x in enumerate(finished, 1):
            it = state["iterations"].get(str(k))
            if x.child_id is not None and it is not None:
                notes[x.child_id] = f"sica iteration {k}: base node {it['base']} rewritten by node {it['rewriter']}"
    elif policy == "best-of-n" and evaluations and (summary := best_of_n_summary(evaluations)):
        notes[evaluations[0].node_id] = f"best-of-n: {pass_at_k_text(summary)}"
    return notes


def sica_base(agents: list[Agent], confidence: float) -> tuple[Agent, Agent, float]:
    """(best, base, lower bound) among agents: best = highest mean (ties: the earlier); base = the most
    recent agent whose mean reaches the best's confidence-interval lower bound (normal approximation,
    standard error sqrt(p(1-p)/n), an upper bound for fractional scores), the best itself when no other
    does."""
    best = max(agents, key=lambda a: (_rate(a), -a.id))
    p, n = _rate(best), max(best.evals, 1)
    lower = p - float(norm.ppf(0.5 + confidence / 2)) * math.sqrt(p * (1 - p) / n)
    base = max((a for a in agents if _rate(a) >= lower), key=lambda a: a.id)
    return best, base, lower


class SICAPolicy(Policy):
    """SICA as published (see the module docstring); the archive is the agents evaluated on the whole sample."""

    name = "sica"
    default_final_rule = "archive_best"

    def __init__(self, config: SearchConfig, tasks: list[str] | None = None,
                 stages: list[list[str]] | None = None) -> None:
        super().__init__(config, tasks, stages)
        self.sample = self.tasks[:config.sica.sample_size] if config.sica.sample_size else list(self.tasks)
        self.iterations: dict[str, dict[str, Any]] = {}
        """Iteration number -> {base, rewriter, lower_bound}: who rewrote whom (an infra error redoes one)."""

    def state(self) -> dict[str, Any]:
        return {"sample": self.sample, "iterations": self.iterations}

    def restore(self, state: dict[str, Any] | None, tree: Tree) -> None:
        if state:
            self.iterations = state["iterations"]

    def archive(self, tree: Tree) -> set[int]:
        return {a.id for a in tree.agents.values() if a.evals and self._done(a)}

    def _done(self, a: Agent) -> bool:
        return not a.evals_in_flight and all(x in a.claimed_tasks for x in self.sample)

    def next_step(self, d: Decide) -> Step:
        t = d.tree
        for agent in sorted(t.agents.values(), key=lambda a: a.id):
            todo = [x for x in self.sample if x not in agent.claimed_tasks]
            if todo:
                return EvalStep(agent.id, todo[0])
        if t.evals_in_flight or t.expansions_in_flight:
            return WAIT  # one iteration at a time: the next base agent needs this one's results
        done = [a for a in sorted(t.agents.values(), key=lambda a: a.id) if a.evals]
        rewritable = {a.id for a in self.rewritable(t)}
        if not done or not d.may_rewrite:
            return None
        best, base, lower = sica_base(done, self.config.sica.confidence)
        if base.id not in rewritable:  # its last rewrites failed: the next most recent one, else the best left
            left = [a for a in done if a.id in rewritable]
            if not left:
                return None
            base = max((a for a in left if _rate(a) >= lower), key=lambda a: a.id, default=None) or \
                max(left, key=lambda a: (_rate(a), -a.id))
        self.iterations[str(t.finished_expansions + 1)] = {"base": base.id, "rewriter": best.id,
                                                           "lower_bound": round(lower, 4)}
        return ExpandStep(base.id, rewriter_id=None if best.id == base.id else best.id)


class BestOfNPolicy(Policy):
    """The control: the initial agent only, each of the run's tasks again and again (fewest runs first)."""

    name = "best-of-n"
    repeats_tasks = True

    def next_step(self, d: Decide) -> Step:
        root = d.tree.agents[d.tree.root_id]
        fewest = min(root.task_runs[x] for x in self.tasks)
        return EvalStep(root.id, next(x for x in self.tasks if root.task_runs[x] == fewest))

    def rewritable(self, tree: Tree) -> list[Agent]:
        return []


def pass_at_k(n: int, c: float, k: int) -> float:
    """Unbiased pass@k of one task (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) from n attempts with c
    successes (a fractional c, from scores in [0, 1], through the Gamma function)."""
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n attempts (n = {n})")
    if n - c < k:
        return 1.0
    if float(c).is_integer():  # Chen et al.'s numerically stable product
        return 1.0 - float(np.prod(1.0 - k / np.arange(n - int(c) + 1, n + 1)))
    log_ratio = math.lgamma(n - c + 1) - math.lgamma(n - c - k + 1) - math.lgamma(n + 1) + math.lgamma(n - k + 1)
    return 1.0 - math.exp(log_ratio)


def best_of_n_summary(evaluations: Sequence[EvaluationRow]) -> dict[str, Any] | None:
    """pass_at_k_summary of a best-of-n run: its (one) agent's counted evaluations, per task."""
    per_task: dict[str, tuple[int, float]] = {}
    for e in evaluations:
        if (won := e.success) is not None:
            n, c = per_task.get(e.task_id, (0, 0.0))
            per_task[e.task_id] = (n + 1, c + won)
    return pass_at_k_summary(per_task) if per_task else None


def pass_at_k_text(summary: dict[str, Any]) -> str:
    """"pass@1 0.333 ± 0.120, pass@4 0.512 ± 0.150 (12 tasks)": the smallest and largest k."""
    ks = summary["ks"]
    shown = sorted({ks[0], ks[-1]}) if ks else []
    parts = [f"pass@{k} {m:.3f} ± {h:.3f}" if not math.isnan(h) else f"pass@{k} {m:.3f}"
             for k in shown for m, h in [summary["overall"][k]]]
    return ", ".join(parts) + f" ({len(summary['tasks'])} tasks)"


def pass_at_k_summary(per_task: dict[str, tuple[int, float]], ks: Sequence[int] = (1, 2, 5, 10)
                      ) -> dict[str, Any]:
    """{k: (mean over tasks, 95% Student-t half-width)} for the ks every task has attempts for, and the
    per-task values. `per_task`: task -> (attempts n, successes c)."""
    n_min = min((n for n, _ in per_task.values()), default=0)
    usable = [k for k in sorted(set(ks) | {n_min}) if 1 <= k <= n_min]
    tasks = {task: {k: pass_at_k(n, c, k) for k in usable} | {"n": n, "c": c} for task, (n, c) in per_task.items()}
    overall = {}
    for k in usable:
        x = np.array([v[k] for v in tasks.values()])
        half = float(student_t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 \
            else float("nan")
        overall[k] = (float(x.mean()), half)
    return {"ks": usable, "overall": overall, "tasks": tasks}
