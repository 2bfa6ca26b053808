"""The tree of agents as a plotly figure: igraph's Reingold-Tilford layout, plotly for drawing,
zoom, pan, hover and the colour switch (an `updatemenus` restyle).

Every agent is a marker (trace `agents`, one point per node, `customdata` = node id), coloured by
its own success rate or by its clade's CMP estimate (grey: no result yet), sized by its number of
evaluations. Failed rewrites are small red crosses hanging under their parent on dotted edges.
The final agent wears a gold star, finalists a thick orange ring.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import igraph
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from hgm.domain import ExpansionStatus, count_text
from hgm.report.data import RunData

COLORSCALE = "Viridis"
NO_RESULT = "#c8c8c8"
AGENTS_TRACE = "agents"


def _colors(values: list[float | None]) -> list[str]:
    known = [v for v in values if v is not None]
    sampled = iter(sample_colorscale(COLORSCALE, known) if known else [])
    return [next(sampled) if v is not None else NO_RESULT for v in values]


def _size(evaluated: int) -> float:
    return 7 + 5 * math.sqrt(evaluated)


def layout(parents: list[int | None]) -> list[tuple[float, float]]:
    """(x, depth) of each vertex; `parents[i]` is the index of vertex i's parent (None: a root)."""
    n = len(parents)
    if n == 0:
        return []
    edges = [(p, i) for i, p in enumerate(parents) if p is not None]
    roots = [i for i, p in enumerate(parents) if p is None]
    coords = igraph.Graph(n=n, edges=edges, directed=True).layout_reingold_tilford(mode="out", root=roots)
    return [(float(x), float(y)) for x, y in coords.coords]


STEERING_SYMBOLS = {"vetoed": "x-thin-open", "rejected": "x-thin-open", "pending approval": "hourglass",
                    "pinned": "diamond"}
"""Marker of an agent a person steered (show_tree.NodeStats.marks); others are circles."""


def _symbol(marks: list[str]) -> str:
    return next((STEERING_SYMBOLS[m] for m in marks if m in STEERING_SYMBOLS), "circle")


def tree_figure(run: RunData) -> go.Figure:
    stats = list(run.stats.values())
    position = {s.id: i for i, s in enumerate(stats)}
    failed = [x for x in run.expansions if x.status == ExpansionStatus.FAILED and x.parent_id in position]
    parents = [position.get(s.parent_id) if s.parent_id is not None else None for s in stats]
    parents += [position[x.parent_id] for x in failed]  # failed rewrites: leaves under their parent
    xy = layout(parents)
    finalists = set(run.finalists)

    def edges(children: range) -> tuple[list[float | None], list[float | None]]:
        ex: list[float | None] = []
        ey: list[float | None] = []
        for i in children:
            p = parents[i]
            if p is not None:
                ex += [xy[p][0], xy[i][0], None]
                ey += [xy[p][1], xy[i][1], None]
        return ex, ey

    own = [s.solved / s.evaluated if s.evaluated else None for s in stats]
    cmp = [s.cmp for s in stats]
    hover = [
        f"<b>node {s.id}</b>{'  FINAL' if s.final else ''}{'  finalist' if s.id in finalists else ''}<br>"
        f"own {count_text(s.solved)}/{s.evaluated}"
        + (f" ({own[i]:.0%})" if own[i] is not None else "")
        + f"<br>clade {count_text(s.clade_solved)}/{s.clade_evaluated}, CMP "
        + (f"{cmp[i]:.2f}" if cmp[i] is not None else "-")
        + f"<br>children {len(s.children)}, failed rewrites {s.failed_expansions}"
        + (f"<br>{escape(_first_line(s.message))}" if s.parent_id is not None else "")
        + "".join(f"<br><b>[{m}]</b>" for m in s.marks)
        for i, s in enumerate(stats)
    ]
    own_colors, cmp_colors = _colors(own), _colors(cmp)
    n = len(stats)
    fig = go.Figure()
    ex, ey = edges(range(n))
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="#9a9a9a", width=1), hoverinfo="skip",
                             name="rewrite", showlegend=False))
    fx, fy = edges(range(n, len(parents)))
    fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", line=dict(color="#d62728", width=1, dash="dot"),
                             hoverinfo="skip", showlegend=False, name="failed rewrite edge"))
    fig.add_trace(go.Scatter(
        x=[xy[n + k][0] for k in range(len(failed))], y=[xy[n + k][1] for k in range(len(failed))],
        mode="markers", name="failed rewrite", marker=dict(symbol="x", size=7, color="#d62728"),
        customdata=[x.parent_id for x in failed], hoverinfo="text",
        hovertext=[f"rewrite {x.id} of node {x.parent_id} failed<br>{escape((x.reason or '')[:160])}"
                   for x in failed]))
    fig.add_trace(go.Scatter(
        x=[xy[i][0] for i in range(n)], y=[xy[i][1] for i in range(n)], mode="markers", name=AGENTS_TRACE,
        customdata=[s.id for s in stats], hoverinfo="text", hovertext=hover,
        marker=dict(size=[_size(s.evaluated) for s in stats], color=own_colors, opacity=0.95,
                    symbol=[_symbol(s.marks) for s in stats],
                    line=dict(color=["#ff7f0e" if s.id in finalists else "#333333" for s in stats],
                              width=[3 if s.id in finalists else 0.5 for s in stats]))))
    agents_trace = len(fig.data) - 1
    final = [i for i, s in enumerate(stats) if s.final]
    fig.add_trace(go.Scatter(
        x=[xy[i][0] for i in final], y=[xy[i][1] for i in final], mode="markers", name="final agent",
        customdata=[stats[i].id for i in final], hoverinfo="text", hovertext=[hover[i] for i in final],
        marker=dict(symbol="star", size=[_size(stats[i].evaluated) + 10 for i in final], color="gold",
                    line=dict(color="#333333", width=1))))
    # The colour bar of the agents' colours (they are explicit colours so that "no result" can be grey).
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                             marker=dict(color=[0], cmin=0, cmax=1, colorscale=COLORSCALE, showscale=True,
                                         colorbar=dict(title=dict(text="own success rate"), thickness=12))))
    bar_trace = len(fig.data) - 1

    def switch(label: str, colors: list[str]) -> dict[str, Any]:
        return dict(label=label, method="restyle",
                    args=[{"marker.color": [colors, [0]], "marker.colorbar.title.text": [None, label]},
                          [agents_trace, bar_trace]])

    depth = max((y for _, y in xy), default=0)
    fig.update_layout(
        height=min(900, 360 + 40 * depth), margin=dict(l=10, r=10, t=40, b=10), dragmode="pan",
        plot_bgcolor="white", hovermode="closest", legend=dict(orientation="h", y=1.02, x=0.3),
        xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed"),
        updatemenus=[dict(type="buttons", direction="right", x=0, y=1.08, xanchor="left", showactive=True,
                          buttons=[switch("own success rate", own_colors), switch("CMP", cmp_colors)])])
    return fig


def _first_line(message: str) -> str:
    text = message.strip()
    return text.splitlines()[0][:100] if text else ""
