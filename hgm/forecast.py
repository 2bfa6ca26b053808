"""`hgm run --dry-run`: the plan of a run and a forecast of what it may spend, before anything starts.

Nothing is started: no sandbox, no run directory, no network, no key needed. The plan: the tasks
(benchmark, subset, count from the shipped subset files or the local tree), the budget, the
expected number of rewrites, the model of each role with its price (the provider table), and which
caps bind. The forecast: a token and dollar range = evaluations x tokens per evaluation + rewrites x
tokens per rewrite (its diagnosis and its self-modification session), each at its role's model's
price (input tokens at the full input price: cached input is not assumed).

Tokens per evaluation and per rewrite come from the user's earlier runs of the same benchmark under
the runs directory (./runs, or --runs-dir): the lowest and the highest per-run average; without
such runs from `DEFAULT_TOKENS` (per benchmark), whose provenance is given there.

Expected rewrites for hgm and its selection ablations (dgm, greedy, random): they share the expand
rule N**alpha >= |T| (N evaluations, |T| agents + rewrites in flight + failed rewrites), so a run of
B evaluations ends with about B**alpha of them; the root's `initial_expansions` come first whatever
B is; and as an agent is evaluated on each task at most once, T tasks need at least B/T agents
(the scheduler rewrites when nothing is left to evaluate). Hence max(initial_expansions,
floor((B - 1)**alpha), ceil(B / T) - 1), B = the budget less the finalists' evaluations (the last
decision is taken with N = B - 1); tests/test_forecast.py checks it against the real scheduler.
dgm-paper and sica follow their own schedules (hgm/baselines.py): the same figure is shown as a
rough guide; best-of-n rewrites nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from hgm.config import HGMConfig
from hgm.domain import EvalStatus, ExpansionStatus
from hgm.errors import UserError
from hgm.llm.pricing import Price

SHARED_RULE = ("hgm", "dgm", "greedy", "random")
"""Policies whose rewrites follow the expand rule N**alpha >= |T| (hgm/policies.py)."""
ROLES = ("downstream", "diagnose", "self_improve")


@dataclass(frozen=True)
class TokenRange:
    """Tokens of one LLM-using unit of work (all its calls), low and high."""

    prompt: tuple[int, int]
    completion: tuple[int, int]


@dataclass(frozen=True)
class UnitTokens:
    """Tokens per unit of work, by the role that spends them."""

    downstream: TokenRange
    """One task evaluation: the agent's session on the task."""
    diagnose: TokenRange
    """One rewrite's diagnosis of a failed evaluation."""
    self_improve: TokenRange
    """One rewrite's session of the parent agent on its own code."""


# Provenance: NOT measured with a real model -- none is reachable from this project's machines, so
# no run has recorded real token counts yet. An estimate from the seed agent's loop
# (hgm/agents/initial/coding_agent.py: every turn resends the whole conversation; up to 100 steps):
# a session of k turns starting from a prompt of P tokens that grows by d per turn sends about
# k*P + k*k*d/2 input tokens and ~c output tokens per turn.
# - evaluation (Polyglot task): k 5..20, P 3k..4k (system prompt, task, files), d 1k..1.5k, c 300..800;
# - diagnosis: one call over the failed evaluation's chat log and the agent's code, 5k..15k in, 1k..2k out;
# - self-modification: k 10..40 over the agent's own code, P 8k, d 1.5k, c 600..1000;
# - SWE-bench evaluation (a whole repository to explore): k 20..60, P 4k..8k, d 1.5k..3k, c 400..1000.
# Your own runs replace these as soon as there are any under ./runs (or --runs-dir).
_REWRITE_DIAGNOSE = TokenRange(prompt=(5_000, 15_000), completion=(1_000, 2_000))
_REWRITE_SELF_IMPROVE = TokenRange(prompt=(155_000, 1_520_000), completion=(6_000, 40_000))
DEFAULT_TOKENS: dict[str, UnitTokens] = {
    "polyglot": UnitTokens(downstream=TokenRange(prompt=(28_000, 380_000), completion=(1_500, 16_000)),
                           diagnose=_REWRITE_DIAGNOSE, self_improve=_REWRITE_SELF_IMPROVE),
    "swe-bench": UnitTokens(downstream=TokenRange(prompt=(380_000, 5_880_000), completion=(8_000, 60_000)),
                            diagnose=_REWRITE_DIAGNOSE, self_improve=_REWRITE_SELF_IMPROVE),
}
"""By benchmark; any other benchmark gets Polyglot's (and the forecast says so)."""


def default_tokens(benchmark: str) -> tuple[UnitTokens, str]:
    if benchmark in DEFAULT_TOKENS:
        return DEFAULT_TOKENS[benchmark], f"hgm/forecast.py DEFAULT_TOKENS[{benchmark!r}]"
    return DEFAULT_TOKENS["polyglot"], f"hgm/forecast.py DEFAULT_TOKENS['polyglot']: none for {benchmark}"


@dataclass(frozen=True)
class Model:
    role: str
    name: str
    price: Price | None


@dataclass(frozen=True)
class Forecast:
    benchmark: str
    subset: str
    tasks: int | None
    tasks_note: str
    budget: int
    rewrites: int
    rewrites_how: str
    models: list[Model]
    tokens: UnitTokens
    tokens_from: str
    total_tokens: tuple[int, int]
    usd: tuple[float, float] | None
    """None when a model's price is unknown."""
    caps: list[str]


def _task_count(cfg: HGMConfig) -> tuple[int | None, str]:
    from hgm.benchmarks import check_subset
    from hgm.benchmarks.registry import BENCHMARKS

    b = cfg.benchmark
    if b.task_ids:
        return len(b.task_ids), "given by --tasks"
    check_subset(b.name, b.subset)
    ids = BENCHMARKS[b.name].subset_ids(b.subset)
    if ids is not None:
        return len(ids), "the shipped subset"
    if b.name == "polyglot":
        from hgm.benchmarks.polyglot import PolyglotBenchmark

        try:
            return len(PolyglotBenchmark.open(b.path).tasks(b.subset)), "the local tree"
        except UserError:
            return None, "unknown: no local Polyglot tree (hgm benchmark fetch polyglot, or --from PATH)"
    return None, "the dataset's size (a dry run does not read it)"


def expected_rewrites(cfg: HGMConfig, n_tasks: int | None) -> tuple[int, str]:
    """Rewrites a run of `cfg` makes if they succeed (see the module docstring), and how that was computed."""
    s = cfg.search
    if s.policy == "best-of-n":
        return 0, "best-of-n never rewrites an agent"
    search = s.max_task_evals - s.finalists * s.finalist_evals
    by_rule = math.floor((search - 1) ** s.alpha + 1e-9)  # the last decision is taken with N = budget - 1
    terms = [f"initial_expansions {s.initial_expansions}", f"floor({search - 1}^{s.alpha:g}) = {by_rule}"]
    n = max(s.initial_expansions, by_rule)
    if n_tasks:  # each agent is evaluated on a task once: with few tasks the budget needs more agents
        needed = math.ceil(search / n_tasks) - 1
        terms.append(f"ceil({search} / {n_tasks} tasks) - 1 = {needed}")
        n = max(n, needed)
    how = (f"max({', '.join(terms)}): the expand rule N^alpha >= |T| keeps the tree at about N^alpha agents, "
           "and an agent with no task left to try is not evaluated again; assumes rewrites succeed")
    if s.policy not in SHARED_RULE:
        how += f"; {s.policy} follows its own schedule (hgm/baselines.py), so this is a rough guide"
    return n, how


def _models(cfg: HGMConfig) -> list[Model]:
    from hgm.llm.providers import ProviderTable

    table = ProviderTable.load(cfg.llm.providers_file)
    names = {"downstream": cfg.llm.downstream, "diagnose": cfg.llm.diagnose, "self_improve": cfg.llm.self_improve}
    return [Model(role, names[role], table.resolve(names[role], cfg.llm.base_url).price) for role in ROLES]


def _run_dirs(runs_dir: Path) -> list[Path]:
    from hgm.store import DB_NAME

    if (runs_dir / DB_NAME).is_file():
        return [runs_dir]
    return sorted(p.parent for p in runs_dir.glob(f"*/{DB_NAME}")) if runs_dir.is_dir() else []


def _per_unit(run: Path, benchmark: str) -> tuple[dict[str, tuple[float, float]], bool] | None:
    """One earlier run's average (prompt, completion) tokens per evaluation (downstream) and per
    rewrite (diagnose, self_improve); None if it is of another benchmark or has no evaluation.
    The bool: whether it had rewrites."""
    from hgm.store import RunStore

    with RunStore.open(run, readonly=True) as store:
        if store.config.benchmark.name != benchmark:
            return None
        evals = sum(e.status != EvalStatus.IN_FLIGHT for e in store.evaluations())
        rewrites = sum(x.status != ExpansionStatus.IN_FLIGHT for x in store.expansions())
        usage = store.llm.usage_by_role()
    if not evals or "downstream" not in usage:
        return None
    out = {"downstream": (usage["downstream"].prompt_tokens / evals, usage["downstream"].completion_tokens / evals)}
    for role in ("diagnose", "self_improve"):
        u = usage.get(role)
        if rewrites and u is not None:
            out[role] = (u.prompt_tokens / rewrites, u.completion_tokens / rewrites)
    return out, bool(rewrites)


def unit_tokens(runs_dir: Path, benchmark: str) -> tuple[UnitTokens, str]:
    """Tokens per unit from the earlier runs under `runs_dir`, else DEFAULT_TOKENS; and where from."""
    per_run = []
    unreadable = 0
    for run in _run_dirs(runs_dir):
        try:
            found = _per_unit(run, benchmark)
        except Exception:  # noqa: BLE001 - a foreign or broken store is skipped, and said
            unreadable += 1
            continue
        if found is not None:
            per_run.append(found)
    skipped = f"; {unreadable} unreadable run stores skipped" if unreadable else ""
    defaults, named = default_tokens(benchmark)
    if not per_run:
        return defaults, (f"documented defaults ({named}; an estimate, not a measurement); no earlier {benchmark} "
                          f"run under {runs_dir}{skipped}")

    def span(role: str) -> TokenRange | None:
        seen = [units[role] for units, _ in per_run if role in units]
        if not seen:
            return None
        return TokenRange(prompt=(round(min(p for p, _ in seen)), round(max(p for p, _ in seen))),
                          completion=(round(min(c for _, c in seen)), round(max(c for _, c in seen))))

    with_rewrites = sum(had for _, had in per_run)
    tokens = UnitTokens(downstream=span("downstream") or defaults.downstream,
                        diagnose=span("diagnose") or defaults.diagnose,
                        self_improve=span("self_improve") or defaults.self_improve)
    where = (f"{len(per_run)} earlier {benchmark} run{'s' if len(per_run) > 1 else ''} under {runs_dir} "
             "(lowest and highest per-run average)")
    if not with_rewrites:
        where += f"; none had rewrites, so per-rewrite tokens are the documented defaults ({named})"
    return tokens, where + skipped


def _cost(tokens: int, price: float) -> float:
    return tokens * price / 1e6


def _caps(cfg: HGMConfig, total: tuple[int, int], usd: tuple[float, float] | None) -> list[str]:
    def verdict(cap: float, low: float, high: float, unit: str) -> str:
        if high <= cap:
            return f"does not bind (forecast at most {unit.format(high)})"
        if low >= cap:
            return "binds: the run would stop there before its evaluation budget is spent"
        return f"may bind (forecast {unit.format(low)}-{unit.format(high)})"

    b = cfg.budget
    out = []
    if b.max_usd_run is None:
        out.append("dollars: no cap (--max-usd / budget.max_usd_run)")
    elif usd is None:
        out.append(f"dollars: ${b.max_usd_run:g} (--max-usd): cannot be checked, a model's price is unknown "
                   "(only the token cap bounds it)")
    else:
        out.append(f"dollars: ${b.max_usd_run:g} (--max-usd): {verdict(b.max_usd_run, *usd, unit='${:.2f}')}")
    if b.max_tokens_run is None:
        out.append("tokens: no cap (budget.max_tokens_run)")
    else:
        out.append(f"tokens: {b.max_tokens_run:,} (budget.max_tokens_run): "
                   f"{verdict(b.max_tokens_run, *total, unit='{:,.0f}')}")
    spend_binds = any(": binds" in line for line in out)
    out.append(f"evaluations: {cfg.search.max_task_evals} (--max-task-evals): "
               + ("a spend cap is likely to end the run first" if spend_binds else "binds (the run ends there)"))
    return out


def forecast(cfg: HGMConfig, runs_dir: Path) -> Forecast:
    n_tasks, tasks_note = _task_count(cfg)
    rewrites, how = expected_rewrites(cfg, n_tasks)
    models = {m.role: m for m in _models(cfg)}
    tokens, source = unit_tokens(runs_dir, cfg.benchmark.name)
    evals = cfg.search.max_task_evals
    target = cfg.benchmark.target
    solver_calls = 0 if target is not None and not target.llm else evals  # a target without an LLM calls none
    count = {"downstream": solver_calls, "diagnose": rewrites, "self_improve": rewrites}
    ranges = {"downstream": tokens.downstream, "diagnose": tokens.diagnose, "self_improve": tokens.self_improve}
    low, high = (sum(count[r] * (ranges[r].prompt[i] + ranges[r].completion[i]) for r in ROLES) for i in (0, 1))
    total = (low, high)
    prices = {r: models[r].price for r in ROLES}

    def dollars(i: int) -> float:
        return sum(count[r] * (_cost(ranges[r].prompt[i], p.input) + _cost(ranges[r].completion[i], p.output))
                   for r, p in prices.items() if p is not None)

    usd = (dollars(0), dollars(1)) if all(p is not None for p in prices.values()) else None
    return Forecast(cfg.benchmark.name, cfg.benchmark.subset, n_tasks, tasks_note, evals, rewrites, how,
                    list(models.values()), tokens, source, total, usd, _caps(cfg, total, usd))


def _k(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def render(f: Forecast, cfg: HGMConfig) -> list[str]:
    """The plan as plain lines (no markup)."""
    s = cfg.search
    tasks = f"{f.tasks} task{'s' if f.tasks != 1 else ''} ({f.tasks_note})" if f.tasks is not None else f.tasks_note
    subset = "" if cfg.benchmark.task_ids else f", subset {f.subset}"
    lines = [
        "dry run: nothing was started (no sandbox, no run directory, no network)",
        f"tasks:     {f.benchmark}{subset}: {tasks}",
        f"budget:    {f.budget} task evaluations, policy {s.policy}, {s.workers} worker{'s' if s.workers > 1 else ''}",
        f"rewrites:  about {f.rewrites} = {f.rewrites_how}",
        "models:",
    ]
    for m in f.models:
        price = "price unknown" if m.price is None else \
            f"${m.price.input:g} in / ${m.price.output:g} out per M tokens"
        lines.append(f"  {m.role:<13} {m.name}  ({price})")
    lines.append(f"tokens per unit, from {f.tokens_from}:")
    for label, r in (("evaluation (downstream)", f.tokens.downstream), ("rewrite: diagnosis", f.tokens.diagnose),
                     ("rewrite: self-modification", f.tokens.self_improve)):
        lines.append(f"  {label:<27} {_k(r.prompt[0])}-{_k(r.prompt[1])} in, "
                     f"{_k(r.completion[0])}-{_k(r.completion[1])} out")
    dollars = "unknown (a model's price is unknown)" if f.usd is None else f"${f.usd[0]:.2f}-${f.usd[1]:.2f}"
    lines.append(f"forecast:  {_k(f.total_tokens[0])}-{_k(f.total_tokens[1])} tokens, {dollars} "
                 f"({f.budget} evaluations + {f.rewrites} rewrites, before any cap)")
    lines.append("caps:")
    lines += [f"  {c}" for c in f.caps]
    return lines


def show_plan(cfg: HGMConfig, runs_dir: Path, console: Console) -> None:
    from hgm.markup import literal

    for line in render(forecast(cfg, runs_dir), cfg):
        console.print(literal(line), soft_wrap=True, highlight=False)
