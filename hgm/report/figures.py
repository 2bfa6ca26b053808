"""The report's plotly figures besides the tree: curves over the run and the agents x tasks matrix."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hgm.domain import COUNTED, EvalStatus
from hgm.report.data import RunData
from hgm.search import final_rule

ROLE_COLORS = {"self_improve": "#9467bd", "downstream": "#1f77b4", "diagnose": "#ff7f0e"}
STATUS_CODES = {None: 0, EvalStatus.SOLVED: 1, EvalStatus.FAILED: 2, EvalStatus.EMPTY_PATCH: 3,
                EvalStatus.INFRA_ERROR: 4, EvalStatus.IN_FLIGHT: 5, EvalStatus.SCORED: 6}
STATUS_COLORS = ["#ffffff", "#2ca02c", "#d62728", "#ff9f40", "#7f7f7f", "#1f9bd7", "#17becf"]
_PRIORITY = {EvalStatus.SOLVED: 3, EvalStatus.FAILED: 3, EvalStatus.EMPTY_PATCH: 3, EvalStatus.SCORED: 3,
             EvalStatus.IN_FLIGHT: 2, EvalStatus.INFRA_ERROR: 1}


def curves_figure(run: RunData) -> go.Figure:
    c = run.curves
    fig = make_subplots(
        rows=3,
        cols=2,
        vertical_spacing=0.11,
        horizontal_spacing=0.08,
        subplot_titles=(
            f"best agent so far (final rule: {final_rule(run.config.search)})",
            "tree size",
            "LLM tokens by role (cumulative)",
            "LLM dollars by role (cumulative, known prices)",
            "infra errors (cumulative)",
            "",
        ),
    )
    hover_t = [f"{s / 60:.1f} min" for s in c.seconds]
    line = dict(shape="hv")

    def add(row: int, col: int, y: list[Any], name: str, color: str, **kw: object) -> None:
        fig.add_trace(go.Scatter(x=c.evals, y=y, name=name, mode="lines", line={**line, "color": color},
                                 customdata=hover_t, hovertemplate=f"{name}: %{{y}}<br>evals %{{x}}, %{{customdata}}"
                                 "<extra></extra>", **kw), row=row, col=col)

    add(1, 1, c.best_lower_bound, "lower bound", "#1f77b4", legendgroup="best")
    add(1, 1, c.best_success_rate, "own success rate", "#2ca02c", legendgroup="best")
    add(1, 2, c.agents, "agents", "#333333")
    add(1, 2, c.failed_rewrites, "failed rewrites", "#d62728")
    for role in c.tokens:
        color = ROLE_COLORS.get(role, "#8c564b")
        add(2, 1, c.tokens[role], f"{role} tokens", color, legendgroup=role)
        add(2, 2, c.dollars[role], f"{role} $", color, legendgroup=role, showlegend=False)
    add(3, 1, c.infra_errors, "infra errors", "#7f7f7f")
    for row, col in ((1, 1), (1, 2), (2, 1), (2, 2), (3, 1)):
        fig.update_xaxes(title_text="evaluations used", row=row, col=col, title_standoff=4)
    fig.update_yaxes(rangemode="tozero")
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_layout(height=820, margin=dict(l=50, r=10, t=40, b=30), hovermode="x unified",
                      legend=dict(orientation="h", y=-0.05))
    return fig


def matrix_figure(run: RunData) -> go.Figure:
    """Agents (rows, with at least one evaluation) x tasks (columns): the outcome of each pair."""
    cell: dict[tuple[int, str], EvalStatus] = {}
    shown: dict[tuple[int, str], str] = {}
    for e in run.evaluations:  # a redone pair shows its counted result over an earlier infra error
        key = (e.node_id, e.task_id)
        if key not in cell or _PRIORITY[e.status] >= _PRIORITY[cell[key]]:
            cell[key] = e.status
            shown[key] = f"scored {e.score:.3f}" if e.status == EvalStatus.SCORED else e.status.value
    agents = sorted({n for n, _ in cell})
    tasks = sorted({t for _, t in cell})
    col = {t: j for j, t in enumerate(tasks)}
    z = [[0] * len(tasks) for _ in agents]
    text = [["not evaluated"] * len(tasks) for _ in agents]
    for i, a in enumerate(agents):
        for t in tasks:
            status = cell.get((a, t))
            if status is not None:
                z[i][col[t]] = STATUS_CODES[status]
                text[i][col[t]] = shown[(a, t)]
    n = len(STATUS_COLORS)
    gap = 1 if len(agents) <= 150 else 0  # cell gaps cost drawing time on big matrices (~0.1-0.2 s at 1,000 rows)
    scale = [[v, STATUS_COLORS[k]] for k in range(n) for v in (k / n, (k + 1) / n)]
    fig = go.Figure(go.Heatmap(
        z=z, x=tasks, y=[f"node {a}" for a in agents], text=text, zmin=-0.5, zmax=n - 0.5, colorscale=scale,
        xgap=gap, ygap=gap, hovertemplate="%{y} on %{x}: %{text}<extra></extra>",
        colorbar=dict(tickvals=list(range(n)), thickness=12, len=1, lenmode="fraction",
                      ticktext=["not evaluated", "solved", "failed", "empty patch", "infra error", "in flight",
                                "scored"])))
    counted = sum(s in COUNTED for s in cell.values())
    fig.update_layout(height=min(4000, 150 + max(150, 16 * len(agents))), margin=dict(l=80, r=10, t=30, b=120),
                      yaxis=dict(autorange="reversed", type="category"), xaxis=dict(type="category", tickangle=-45),
                      title=dict(text=f"{len(agents)} agents x {len(tasks)} tasks, {counted} counted results",
                                 font=dict(size=13)))
    return fig
