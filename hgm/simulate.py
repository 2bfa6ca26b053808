"""A synthetic world to compare search policies without any LLM (`hgm simulate`).

The world. Every agent has a latent *skill* s (logit scale) and a latent *metaproductivity* m.
- Task pool: `tasks` tasks, task t has difficulty d_t ~ Normal(0, difficulty_sd) (fixed per seed).
  Evaluating an agent on task t solves it with probability sigmoid(s - d_t) (one Bernoulli draw).
  The agent's *true utility* is its expected success rate over the pool: mean_t sigmoid(s - d_t).
- Rewrite (expansion) of parent p: fails (no child) with probability `rewrite_fail_prob`, else
  yields a child with s_child = s_p + m_p + Normal(0, step_sd) and
  m_child = m_p + Normal(0, metaproductivity_sd): metaproductivity is inherited with noise.
- `root_lineages` (optional): children of the root are drawn from these lineages instead, each
  with its own immediate skill change and metaproductivity. The `deceptive` preset uses two: one
  that scores higher right away but whose descendants decline, one that scores lower now but
  whose descendants improve (the paper's metaproductivity-performance mismatch).
- `infra_error_prob`: an evaluation raises (recorded as infra_error by the scheduler).

An agent's latent state is carried in its commit string (`sim:<skill>:<m>:<depth>:<lineage>`), so a
simulated run stored on disk resumes with the same world.

`compare()` runs policies over seeds in memory (the same Search and Policy code as real runs,
W=1, MemoryStore). `run_in_dir()` runs one search through the real scheduler and SQLite store.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.table import Table

from hgm.baselines import archive_member
from hgm.config import CONFIG_DIR, HGMConfig, SearchConfig
from hgm.domain import EvalOutcome, EvalStatus, ExpansionOutcome, ExpansionStatus, MetaKey
from hgm.errors import UserError
from hgm.executors.local import LocalExecutor
from hgm.memory_store import MemoryStore
from hgm.policies import HGMPolicy
from hgm.search import POLICIES, Search, SearchResult, final_rule, job_function
from hgm.store import RunStore

PRESET_DIR = CONFIG_DIR / "simulate"


class Lineage(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    name: str = Field("", pattern=r"^[^:]*$")
    """Label shown in reports (no colon)."""
    weight: float = Field(1.0, gt=0)
    """Relative probability that a child of the root starts this lineage."""
    skill_delta: float = 0.0
    """Immediate skill change (logit) of the root's child."""
    metaproductivity: float = 0.0
    """Mean metaproductivity of the lineage's first agent."""


class World(BaseModel):
    """Parameters of the synthetic world (see the module docstring for the model)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    tasks: int = Field(60, ge=1)
    """Size of the task pool."""
    difficulty_sd: float = Field(1.0, ge=0)
    """Task difficulties ~ Normal(0, difficulty_sd) on the logit scale."""
    root_skill: float = -1.0
    """Skill (logit) of the initial agent."""
    root_metaproductivity: float = 0.0
    """Mean skill change of the root's children (when no root_lineages)."""
    step_sd: float = Field(0.4, ge=0)
    """Noise of a child's skill change."""
    metaproductivity_sd: float = Field(0.1, ge=0)
    """Noise of a child's inherited metaproductivity."""
    rewrite_fail_prob: float = Field(0.2, ge=0, le=1)
    """Probability that a rewrite yields no child."""
    infra_error_prob: float = Field(0.0, ge=0, le=1)
    """Probability that an evaluation raises (an infra error)."""
    root_lineages: list[Lineage] = []
    """If given, children of the root start one of these lineages."""
    target_utility: float = Field(0.6, gt=0, lt=1)
    """Report how many evaluations it took until the tree held an agent this good."""
    score_noise_sd: float | None = Field(None, ge=0)
    """If set, an evaluation is scored as a target's scorer scores it: a fractional success, the
    agent's success probability on the task plus Normal(0, score_noise_sd) noise, clipped to
    [0, 1] (None: solved or failed, drawn with that probability)."""


def load_world(preset: str | None = None, path: Path | None = None) -> World:
    """A world from a preset name (hgm/configs/simulate/NAME.yaml) or a YAML/JSON file."""
    if path is None:
        known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        path = PRESET_DIR / f"{preset or 'default'}.yaml"
        if not path.is_file():
            raise UserError(f"unknown simulate preset {preset!r}; known: {', '.join(known)}")
    if not Path(path).is_file():
        raise UserError(f"world file not found: {path}")
    try:
        return World.model_validate(yaml.safe_load(Path(path).read_text()) or {})
    except (yaml.YAMLError, ValidationError) as e:
        raise UserError(f"invalid world file {path}: {e}") from None


def _sigmoid(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.asarray(1 / (1 + np.exp(-np.asarray(x, dtype=float))), dtype=float)


class SimWorld:
    """The expand / evaluate callables of one simulated run (thread-safe)."""

    def __init__(self, world: World, seed: int) -> None:
        self.world = world
        self.difficulty = np.random.default_rng([seed, 0]).normal(0, world.difficulty_sd, world.tasks)
        self.task_ids = [f"task{i:03d}" for i in range(world.tasks)]
        self._task_index = {t: i for i, t in enumerate(self.task_ids)}
        self._rng = np.random.default_rng([seed, 1])
        self._lock = threading.Lock()
        self.commit_of: dict[int, str] = {}
        """node id -> commit; the caller points this at the search tree's commits."""
        self.delay_s = 0.0

    def root_commit(self) -> str:
        return _encode(Latent(self.world.root_skill, self.world.root_metaproductivity, 0, ""))

    def utility(self, commit: str) -> float:
        skill = _decode(commit).skill
        return float(np.mean(_sigmoid(skill - self.difficulty)))

    def expand(self, parent_id: int, expansion_id: int) -> ExpansionOutcome:
        skill, meta, depth, lineage = _decode(self.commit_of[parent_id])
        w = self.world
        with self._lock:
            if self._rng.random() < w.rewrite_fail_prob:
                return ExpansionOutcome(ExpansionStatus.FAILED, reason="simulated rewrite failure")
            step = meta
            if depth == 0 and w.root_lineages:
                p = np.array([lin.weight for lin in w.root_lineages])
                lin = w.root_lineages[int(self._rng.choice(len(p), p=p / p.sum()))]
                step, meta, lineage = lin.skill_delta, lin.metaproductivity, lin.name
            child_skill = skill + step + self._rng.normal(0, w.step_sd)
            child_meta = meta + self._rng.normal(0, w.metaproductivity_sd)
        return ExpansionOutcome(
            ExpansionStatus.COMMITTED, commit=_encode(Latent(child_skill, child_meta, depth + 1, lineage))
        )

    def evaluate(self, node_id: int, task_id: str, eval_id: int) -> EvalOutcome:
        if self.delay_s:
            time.sleep(self.delay_s)
        skill = _decode(self.commit_of[node_id]).skill
        p_solve = float(_sigmoid(skill - self.difficulty[self._task_index[task_id]]))
        with self._lock:
            if self._rng.random() < self.world.infra_error_prob:
                raise RuntimeError("simulated infra error")
            if self.world.score_noise_sd is not None:
                score = float(np.clip(p_solve + self._rng.normal(0, self.world.score_noise_sd), 0.0, 1.0))
                return EvalOutcome(EvalStatus.SCORED, score=score)
            solved = self._rng.random() < p_solve
        return EvalOutcome(EvalStatus.SOLVED if solved else EvalStatus.FAILED)


class Latent(NamedTuple):
    skill: float
    metaproductivity: float
    depth: int
    lineage: str
    """Name of the root lineage the agent descends from ('' for the root or without lineages)."""


def _encode(z: Latent) -> str:
    return f"sim:{float(z.skill)!r}:{float(z.metaproductivity)!r}:{z.depth}:{z.lineage}"


def _decode(commit: str | None) -> Latent:
    if not commit or not commit.startswith("sim:"):
        raise ValueError(f"not a simulated agent: {commit!r}")
    _, skill, meta, depth, lineage = commit.split(":", 4)
    return Latent(float(skill), float(meta), int(depth), lineage)


@dataclass(frozen=True)
class RunMetrics:
    policy: str
    seed: int
    final_utility: float
    best_utility: float
    evals_to_target: int | None
    agents: int
    final_lineage: str
    """Root lineage the final agent descends from ('' without lineages or for the root)."""
    lcb_final_utility: float
    """True utility of the agent HGM's final rule (lower posterior bound) picks from this tree."""


def simulate_once(world: World, search: SearchConfig, seed: int, curve: dict[str, Any] | None = None) -> RunMetrics:
    """One in-memory search (W=1) on a world drawn from `seed`. If `curve` is a dict, it is filled
    with the run's curve for `hgm simulate --html` (see `_curve`)."""
    sim = SimWorld(world, seed)
    store = MemoryStore()
    store.add_node(None, sim.root_commit())
    hit: list[int] = []
    config = search.model_copy(update={"seed": seed, "workers": 1})
    s: Search

    def expand(parent_id: int, expansion_id: int) -> ExpansionOutcome:
        out = sim.expand(parent_id, expansion_id)
        if not hit and out.commit and sim.utility(out.commit) >= world.target_utility:
            hit.append(s.tree.evals_done)
        return out

    s = Search(store, config, sim.task_ids, LocalExecutor(job_function(expand, sim.evaluate), 1, inline=True))
    sim.commit_of = _CommitView(s)  # type: ignore[assignment]
    if sim.utility(sim.root_commit()) >= world.target_utility:
        hit.append(0)
    result = s.run()
    utilities = {a.id: sim.utility(a.commit or "") for a in s.tree.agents.values()}
    lcb_final = HGMPolicy(config).rank(s.tree)[0]
    if curve is not None:
        curve.update(_curve(store, utilities, config))
    return RunMetrics(config.policy, seed, utilities[result.final_agent], max(utilities.values()),
                      hit[0] if hit else None, len(utilities),
                      _decode(s.tree.agents[result.final_agent].commit).lineage, utilities[lcb_final])


def _curve(store: MemoryStore, utilities: dict[int, float], config: SearchConfig) -> dict[str, Any]:
    """Evaluations used, the best agent's lower bound and its true utility at each point (the best by
    the run's own final rule); rewrites."""
    from hgm.report.data import build_curves

    state = store.get_meta(MetaKey.POLICY_STATE)
    c = build_curves(store.nodes(), store.evaluations(), store.expansions(), [], config.final_quantile,
                     rule=final_rule(config), member=archive_member(config, json.loads(state) if state else None))
    exps = store.expansions()
    return {"evals": c.evals, "lower_bound": c.best_lower_bound,
            "true_utility": [utilities[a] for a in c.best_agent],
            "rewrites": sum(x.status in (ExpansionStatus.COMMITTED, ExpansionStatus.FAILED) for x in exps),
            "committed": sum(x.status == ExpansionStatus.COMMITTED for x in exps)}


class _CommitView:
    """node id -> commit, read from a search's live tree."""

    def __init__(self, search: Search) -> None:
        self.search = search

    def __getitem__(self, node_id: int) -> str:
        return self.search.tree.agents[node_id].commit or ""


def compare(
    world: World, search: SearchConfig, policies: list[str], seeds: int, curves: bool = False
) -> list[dict[str, Any]]:
    """Run each policy on seeds 0..seeds-1 and summarize (mean and 95% CI half-width). With `curves`,
    each run's entry also holds its curve (`_curve`), for `hgm simulate --html`."""
    for name in policies:
        if name not in POLICIES:
            raise UserError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")
    rows = []
    for name in policies:
        traced: list[dict[str, Any] | None] = [
            {} if curves or name == "hgm" else None for _ in range(seeds)
        ]  # hgm's: for evals_to_match
        runs = [simulate_once(world, search.model_copy(update={"policy": name}), seed, traced[seed])
                for seed in range(seeds)]
        final = np.array([r.final_utility for r in runs])
        best = np.array([r.best_utility for r in runs])
        reached = [r.evals_to_target for r in runs if r.evals_to_target is not None]
        lcb = np.array([r.lcb_final_utility for r in runs])
        lineages = {lin.name: sum(r.final_lineage == lin.name for r in runs) / seeds for lin in world.root_lineages}
        rows.append({
            "policy": name, "seeds": seeds, "budget": search.max_task_evals,
            "final_utility_mean": float(final.mean()), "final_utility_ci95": _ci(final),
            "best_utility_mean": float(best.mean()), "best_utility_ci95": _ci(best),
            "target_utility": world.target_utility, "reached_target": len(reached) / seeds,
            "median_evals_to_target": float(np.median(reached)) if reached else None,
            "agents_mean": float(np.mean([r.agents for r in runs])),
            "lcb_final_utility_mean": float(lcb.mean()), "lcb_final_utility_ci95": _ci(lcb),
            "final_lineage_share": lineages,
            "runs": [{**asdict(r), **({"curve": c} if c is not None else {})}
                     for r, c in zip(runs, traced, strict=True)],
        })
    return rows


def evals_to_match(rows: list[dict[str, Any]], reference: str = "hgm", resamples: int = 2000) -> list[dict[str, Any]]:
    """The key figure of a comparison: for each other policy, the task evaluations `reference` needs to
    reach that policy's final utility, seed by seed (the same world): the first point of the reference
    run's curve where the agent its final rule names then is at least as good. With W=1 and no cool-down
    a run with budget n is the first n evaluations of the run with the full budget, so this is what the
    reference would reach with budget n. Median over seeds with a 95% bootstrap CI (seeds that never
    reach it count as more than the budget), and the share of seeds that reach it."""
    ref = next((r for r in rows if r["policy"] == reference), None)
    if ref is None:
        return []
    rng = np.random.default_rng(0)
    out = []
    for row in rows:
        if row is ref:
            continue
        needed = []
        for mine, theirs in zip(ref["runs"], row["runs"], strict=True):
            c = mine["curve"]
            hit = next((n for n, u in zip(c["evals"], c["true_utility"], strict=True)
                        if n and u >= theirs["final_utility"] - 1e-12), None)  # n = 0: nothing is named yet
            needed.append(float("inf") if hit is None else float(hit))
        x = np.array(needed)
        medians = np.median(x[rng.integers(len(x), size=(resamples, len(x)))], axis=1)
        lo, hi = np.quantile(medians, 0.025, method="lower"), np.quantile(medians, 0.975, method="higher")
        out.append({"baseline": row["policy"], "reference": reference, "budget": row["budget"],
                    "baseline_final_utility_mean": row["final_utility_mean"],
                    "reference_final_utility_mean": ref["final_utility_mean"],
                    "evals_needed_median": float(np.median(x)), "evals_needed_ci95": [float(lo), float(hi)],
                    "evals_needed_mean_where_reached": float(x[np.isfinite(x)].mean()) if np.isfinite(x).any()
                    else None, "reached": float(np.isfinite(x).mean()), "seeds": len(x)})
    return out


def match_table(matches: list[dict[str, Any]], title: str = "") -> Table:
    """evals_to_match() as a rich table."""
    t = Table(title=title)
    for col in ("baseline", "its final utility", f"{matches[0]['reference'] if matches else 'hgm'}'s at budget",
                "evals needed (median, 95% CI)", "share of budget", "seeds reaching it"):
        t.add_column(col, justify="left" if col == "baseline" else "right")

    def n(v: float) -> str:
        return f">{m['budget']}" if not np.isfinite(v) else f"{v:.0f}"

    for m in matches:
        lo, hi = m["evals_needed_ci95"]
        med = m["evals_needed_median"]
        t.add_row(m["baseline"], f"{m['baseline_final_utility_mean']:.3f}", f"{m['reference_final_utility_mean']:.3f}",
                  f"{n(med)} [{n(lo)}, {n(hi)}]", "-" if not np.isfinite(med) else f"{med / m['budget']:.0%}",
                  f"{m['reached']:.0%}")
    return t


def _ci(x: np.ndarray) -> float:
    return float(1.96 * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def run_in_dir(run_dir: Path, world: World, config: HGMConfig, delay_s: float = 0.0) -> tuple[SearchResult, float]:
    """One simulated search through the real scheduler and SQLite store; resumes if DIR holds a run.

    Returns the search result and the final agent's true utility.
    """
    if (Path(run_dir) / "run.sqlite").exists():
        store = RunStore.open(run_dir)
        saved = store.get_meta(MetaKey.SIMULATE_WORLD)
        if saved is None:
            store.close()
            raise UserError(f"{run_dir} holds a real run, not a simulated one; give --run-dir a new directory")
        world, config = World.model_validate_json(saved), store.config
    else:
        store = RunStore.create(run_dir, config)
        store.set_meta(MetaKey.SIMULATE_WORLD, world.model_dump_json())
    with store:
        sim = SimWorld(world, config.search.seed)
        sim.delay_s = delay_s
        if not store.nodes():
            store.add_node(None, sim.root_commit(), "simulated root")
        executor = LocalExecutor(job_function(sim.expand, sim.evaluate), config.search.workers)
        search = Search(store, config.search, sim.task_ids, executor)
        sim.commit_of = _CommitView(search)  # type: ignore[assignment]
        result = search.run()
        final_commit = search.tree.agents[result.final_agent].commit or ""
        return result, sim.utility(final_commit)


def sleep_job(delay_s: float, job: object, _bundles: list[object] | None = None) -> EvalOutcome | ExpansionOutcome:
    """Synthetic work for executor benchmarks and tests: sleep, then a result that depends only on
    the decision's ids (an evaluation solves 1 task in 3; every rewrite yields a child). It runs
    anywhere: the local executor calls it with a decision, a Ray worker as `function(spec, job, bundles)`."""
    from hgm.search import Evaluate, Expand

    time.sleep(delay_s)
    if isinstance(job, Expand):
        return ExpansionOutcome(ExpansionStatus.COMMITTED, commit=f"synthetic-{job.expansion_id}")
    assert isinstance(job, Evaluate), f"not a decision: {job!r}"
    return EvalOutcome(
        EvalStatus.SOLVED if (job.node_id + len(job.task_id) + job.eval_id) % 3 == 0 else EvalStatus.FAILED
    )


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)


def table(rows: list[dict[str, Any]], title: str = "") -> Table:
    """The comparison as a rich table."""
    t = Table(title=title)
    cols = ["policy", "final agent utility", "best in tree", "reached target", "evals to target",
            "final by lower bound", "agents"]
    lineages = list(rows[0]["final_lineage_share"]) if rows else []
    if lineages:
        cols.append("final agent's lineage")
    for col in cols:
        t.add_column(col, justify="left" if col in ("policy", "final agent's lineage") else "right")
    for r in rows:
        med = r["median_evals_to_target"]
        cells = [r["policy"], f"{r['final_utility_mean']:.3f} ± {r['final_utility_ci95']:.3f}",
                 f"{r['best_utility_mean']:.3f} ± {r['best_utility_ci95']:.3f}",
                 f"{r['reached_target']:.0%} (≥{r['target_utility']:g})",
                 "-" if med is None else f"{med:.0f} (median)",
                 f"{r['lcb_final_utility_mean']:.3f} ± {r['lcb_final_utility_ci95']:.3f}", f"{r['agents_mean']:.1f}"]
        if lineages:
            cells.append(", ".join(f"{k} {v:.0%}" for k, v in r["final_lineage_share"].items()))
        t.add_row(*cells)
    return t
