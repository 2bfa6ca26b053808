"""`hgm compare RUN...` and `hgm simulate --html`: runs grouped by policy (and by every config key
that differs between them, the seed aside), a table of the final agent's score with a 95% CI across
seeds (Student t), evaluations, rewrites, dollars and wall time, and the curves of the best agent
so far overlaid (thin: each run; thick: the group's mean)."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from scipy.stats import t as student_t

from hgm.baselines import best_of_n_summary, pass_at_k_text
from hgm.domain import ExpansionStatus
from hgm.errors import UserError
from hgm.report.data import RunData, is_run_dir, load_run, open_files
from hgm.report.page import figure_html, render_page, table
from hgm.search import final_rule

IGNORED_KEYS = {"search.seed", "benchmark.path", "llm.cassette", "llm.providers_file"}
"""Config keys that never make two runs belong to different groups."""
MAX_POINTS = 200


@dataclass
class RunSummary:
    label: str
    group: str
    seed: int
    score: float | None
    """Real runs: the final agent's own success rate; simulated runs: its true utility."""
    evals: int
    rewrites: int
    """Rewrites that finished (committed or failed; infra errors not counted)."""
    committed: int
    dollars: float | None
    """Known cost (None: no LLM, e.g. simulated)."""
    wall_s: float | None
    final_agent: int | None
    status: str = "finished"
    dollars_partial: bool = False
    """Some calls' prices are unknown: `dollars` is a lower bound."""
    x: list[int] = field(default_factory=list)
    lower_bound: list[float] = field(default_factory=list)
    second: list[float] = field(default_factory=list)
    """Own success rate of the best agent so far (real runs) or its true utility (simulated)."""
    usd: list[float] = field(default_factory=list)
    """Known dollars spent at each point of the curves (real runs)."""
    final_rule: str = ""
    pass_at_k: str = ""
    """best-of-n runs: pass@1 and pass@k over tasks (hgm.baselines.pass_at_k)."""


def at(x: list[float], y: list[float], where: float) -> float | None:
    """The step curve (x, y) at x = where: its last point at or before it (None before the first)."""
    i = int(np.searchsorted(np.asarray(x, dtype=float), where, side="right")) - 1
    return None if i < 0 or not y else y[i]


def ci95(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% Student-t interval); the half-width is nan for one value."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan")
    if len(x) == 1:
        return float(x[0]), float("nan")
    return float(x.mean()), float(student_t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v if not isinstance(v, list) else tuple(v)
    return out


def group_labels(configs: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(a group label per run, the config keys that tell the groups apart). The policy always names
    the group; every other key whose value differs between the runs (the seed aside) joins it."""
    flat = [_flatten(c) for c in configs]
    keys = sorted({k for f in flat for k in f})
    differing = [k for k in keys if k not in IGNORED_KEYS and k != "search.policy"
                 and len({repr(f.get(k)) for f in flat}) > 1]
    labels = [", ".join([f"{f.get('search.policy')}"] + [f"{k}={f.get(k)}" for k in differing]) for f in flat]
    return labels, ["search.policy", *differing]


def summarize(run: RunData, group: str) -> RunSummary:
    final = run.best
    stats = run.stats.get(final) if final is not None else None
    score = stats.solved / stats.evaluated if stats and stats.evaluated else None
    finished = [x for x in run.expansions if x.status in (ExpansionStatus.COMMITTED, ExpansionStatus.FAILED)]
    c = run.curves
    usd = [sum(v[i] for v in c.dollars.values()) for i in range(len(c.evals))]
    summary = best_of_n_summary(run.evaluations) if run.config.search.policy == "best-of-n" else None
    return RunSummary(str(run.run_dir), group, run.config.search.seed, score, run.evals_used, len(finished),
                      sum(x.status == ExpansionStatus.COMMITTED for x in finished),
                      run.dollars, run.wall_s, final, run.status, not run.dollars_complete,
                      c.evals, c.best_lower_bound, c.best_success_rate, usd, final_rule(run.config.search),
                      pass_at_k_text(summary) if summary else "")


def _thin(x: list[Any], *ys: list[Any]) -> tuple[list[Any], ...]:
    if len(x) <= MAX_POINTS:
        return (x, *ys)
    idx = sorted(set(np.linspace(0, len(x) - 1, MAX_POINTS).astype(int).tolist()))
    return ([x[i] for i in idx], *[[y[i] for i in idx] for y in ys])


def _mean_curve(runs: list[RunSummary], attr: str, by: str = "evals") -> tuple[list[float], list[float]]:
    """The group's mean of a step curve on a common grid of evaluations used, or of dollars spent
    (where all runs reach)."""
    runs = [r for r in runs if r.x]  # a run killed before its first agent has no curve
    if not runs:
        return [], []
    xs = {id(r): (r.usd if by == "usd" else r.x) for r in runs}
    top = min(xs[id(r)][-1] for r in runs)
    grid = np.unique(np.linspace(0, top, MAX_POINTS)) if by == "usd" else \
        np.unique(np.linspace(0, top, min(MAX_POINTS, int(top) + 1)).astype(int))
    rows = []
    for r in runs:
        x, y = np.asarray(xs[id(r)], dtype=float), np.asarray(getattr(r, attr), dtype=float)
        rows.append(y[np.clip(np.searchsorted(x, grid, side="right") - 1, 0, len(y) - 1)])
    with warnings.catch_warnings():  # a grid point where every run is still nan (no result yet) stays nan
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(np.vstack(rows), axis=0) if rows else np.array([])
    return grid.tolist(), mean.tolist()


def curves_figure(runs: list[RunSummary], second_name: str, by: str = "evals") -> go.Figure:
    """by: evals (x = evaluations used) or usd (x = known dollars spent)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=(
        "best agent so far (each run's final rule): lower bound", f"best agent so far: {second_name}"))
    groups = list(dict.fromkeys(r.group for r in runs))
    colors = {g: qualitative.D3[i % len(qualitative.D3)] for i, g in enumerate(groups)}
    for col, attr in ((1, "lower_bound"), (2, "second")):
        for r in runs:
            x, y = _thin(r.usd if by == "usd" else r.x, getattr(r, attr))
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=colors[r.group], width=1, shape="hv"),
                                     opacity=0.35, legendgroup=r.group, showlegend=False, name=r.label,
                                     hovertemplate=f"{escape(r.label)}<br>evals %{{x}}: %{{y:.3f}}<extra></extra>"),
                          row=1, col=col)
        for g in groups:
            gx, gy = _mean_curve([r for r in runs if r.group == g], attr, by)
            fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", line=dict(color=colors[g], width=3, shape="hv"), name=g,
                                     legendgroup=g, showlegend=col == 1,
                                     hovertemplate=f"{escape(g)} (mean)<br>evals %{{x}}: %{{y:.3f}}<extra></extra>"),
                          row=1, col=col)
        fig.update_xaxes(
            title_text="dollars spent (known prices)" if by == "usd" else "evaluations used", row=1, col=col
        )
        fig.update_yaxes(range=[0, 1.02], row=1, col=col)
    fig.update_layout(height=460, margin=dict(l=50, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def _fmt(v: float | None, spec: str, prefix: str = "") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{prefix}{v:{spec}}"


def _wall(s: float | None) -> str:
    return "-" if s is None else (f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min")


def _at_equal(rs: list[RunSummary], xs: str, where: float) -> str:
    values = [v for r in rs if (v := at(getattr(r, xs), r.second, where)) is not None and not math.isnan(v)]
    mean, half = ci95(values)
    return f"{_fmt(mean, '.3f')} ± {_fmt(half, '.3f')}" if values else "-"


def comparison_html(runs: list[RunSummary], *, title: str, subtitle: str, score_name: str, second_name: str,
                    grouped_by: list[str], note: str = "", by: str = "evals") -> str:
    """by: evals (curves over evaluations used) or usd (over dollars spent; the table then also compares
    the groups at the dollars every run reached). The table always compares them at the evaluations
    every run reached: the best agent so far by each run's final rule, its `second_name` there."""
    groups = list(dict.fromkeys(r.group for r in runs))
    equal_evals = min((r.x[-1] for r in runs if r.x), default=0)
    equal_usd = min((r.usd[-1] for r in runs if r.usd), default=0.0)
    group_rows = []
    for g in groups:
        rs = [r for r in runs if r.group == g]
        scores = [r.score for r in rs if r.score is not None]
        mean, half = ci95(scores)
        dollars = [r.dollars for r in rs if r.dollars is not None]
        walls = [r.wall_s for r in rs if r.wall_s is not None]
        group_rows.append(
            [
                escape(g),
                str(len(rs)),
                escape(", ".join(str(r.seed) for r in rs)),
                escape(", ".join(sorted({r.final_rule for r in rs if r.final_rule})) or "-"),
                f"{_fmt(mean, '.3f')} ± {_fmt(half, '.3f')}" if scores else "-",
                _at_equal(rs, "x", equal_evals),
                *([_at_equal(rs, "usd", equal_usd)] if by == "usd" else []),
                f"{np.mean([r.evals for r in rs]):.0f}",
                f"{np.mean([r.committed for r in rs]):.1f} / {np.mean([r.rewrites for r in rs]):.1f}",
                _fmt(float(np.mean(dollars)) if dollars else None, ".4f", "$")
                + ("+?" if any(r.dollars_partial for r in rs) else ""),
                _wall(float(np.mean(walls)) if walls else None),
            ]
        )
    head = ["group", "runs", "seeds", "final rule", f"{escape(score_name)}: mean ± 95% CI (t)",
            f"{escape(second_name)} of the best so far at {equal_evals} evaluations",
            *([f"{escape(second_name)} of the best so far at ${equal_usd:.4f}"] if by == "usd" else []),
            "evaluations used (mean)", "rewrites committed / finished (mean)", "dollars (mean)", "wall time (mean)"]
    run_rows = [[escape(r.label), escape(r.group), str(r.seed), escape(r.status), _fmt(r.final_agent, "d", "node "),
                 _fmt(r.score, ".3f"), escape(r.pass_at_k) or "-", str(r.evals), f"{r.committed} / {r.rewrites}",
                 _fmt(r.dollars, ".4f", "$") + ("+?" if r.dollars_partial else ""),
                 _wall(r.wall_s)] for r in runs]
    body = (
        f"<section><h2>By group</h2><p class='muted'>Grouped by {escape(', '.join(grouped_by))}. {note}</p>"
        + table(head, group_rows, right=set(range(4, len(head))) | {1}, cls="groups")
        + "</section><section><h2>Curves</h2>" + figure_html(curves_figure(runs, second_name, by), "compare-curves")
        + "</section><section><h2>Runs</h2>"
        + table(["run", "group", "seed", "status", "final agent", escape(score_name), "pass@k (best-of-n)",
                 "evaluations", "rewrites", "dollars", "wall time"], run_rows, right={2, 5, 7, 8, 9, 10}, cls="runs")
        + "</section>")
    return render_page(title, subtitle, body)


def _write(html: str, out: Path) -> Path:
    if out.is_dir():
        raise UserError(f"{out} is a directory; give -o a file name such as {out / 'compare.html'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(html)
    os.replace(tmp, out)
    return out


def write_comparison(run_dirs: list[Path], out: Path, by: str = "evals") -> Path:
    """`hgm compare`: the runs in `run_dirs` (each read-only) compared in one page at `out`; `by`: evals
    or usd (see comparison_html)."""
    if by not in ("evals", "usd"):
        raise UserError(f"unknown --by {by!r}; use evals (equal task evaluations) or usd (equal dollars as well)")
    missing = [str(d) for d in run_dirs if not is_run_dir(d)]
    if missing:
        raise UserError(f"not hgm run directories (no run.sqlite): {', '.join(missing)}; `hgm runs DIR` lists runs")
    if len(set(Path(d).resolve() for d in run_dirs)) != len(run_dirs):
        raise UserError("a run directory is given twice; give each run once")
    held = open_files()
    runs = [load_run(d, held=held) for d in run_dirs]
    labels, keys = group_labels([r.config.model_dump(mode="json") for r in runs])
    summaries = [summarize(r, g) for r, g in zip(runs, labels, strict=True)]
    unfinished = sum(r.final is None for r in runs)
    note = (f"{unfinished} run(s) have not named a final agent yet: their best agent so far is used. "
            if unfinished else "") + "Dollars marked +? leave out calls whose price is unknown."
    return _write(
        comparison_html(
            summaries,
            title=f"hgm compare: {len(runs)} runs",
            score_name="final agent's own success rate",
            subtitle=f"{len(runs)} runs in {len(set(labels))} groups",
            second_name="own success rate",
            grouped_by=keys,
            note=note,
            by=by,
        ),
        Path(out),
    )


def write_simulation(rows: list[dict[str, Any]], out: Path, title: str) -> Path:
    """`hgm simulate --html`: the rows of hgm.simulate.compare(..., curves=True) as a comparison."""
    summaries = []
    for row in rows:
        for r in row["runs"]:
            c = r["curve"]
            summaries.append(
                RunSummary(
                    f"{row['policy']} seed {r['seed']}",
                    row["policy"],
                    r["seed"],
                    r["final_utility"],
                    c["evals"][-1] if c["evals"] else 0,
                    c["rewrites"],
                    c["committed"],
                    None,
                    None,
                    None,
                    "finished",
                    False,
                    c["evals"],
                    c["lower_bound"],
                    c["true_utility"],
                )
            )
    note = "Simulated runs: the score is the true utility (expected success rate over the task pool) of the " \
           "agent each policy named final; no LLM, no dollars."
    return _write(comparison_html(summaries, title=title, subtitle=f"{len(summaries)} simulated runs",
                                  score_name="final agent's true utility", second_name="true utility",
                                  grouped_by=["search.policy"], note=note), Path(out))
