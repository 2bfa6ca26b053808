"""`hgm report`: one self-contained HTML file about a run, and `hgm compare` / `hgm simulate --html`
(hgm/report/compare.py) about several.

The report reads the run store read-only (hgm/report/data.py), so it works while the run goes on,
after a kill and after a resume. It shows the tree (hgm/report/tree.py; click an agent for its
panel, hgm/report/panels.py), curves over the run and the agents x tasks matrix
(hgm/report/figures.py), usage by role, the steering timeline and the config. Plots and layout come from plotly and
igraph, diffs are highlighted by pygments; the only hand-written script is the click-to-panel glue.
"""

from __future__ import annotations

import math
import os
import time
from html import escape
from pathlib import Path

from hgm.baselines import best_of_n_summary
from hgm.config import dump_config
from hgm.domain import count_text
from hgm.errors import UserError
from hgm.report.data import RunData, is_run_dir, load_run
from hgm.report.figures import curves_figure, matrix_figure
from hgm.report.page import asset, figure_html, json_script, render_page, table
from hgm.report.panels import diff_css, node_panels
from hgm.report.tree import tree_figure
from hgm.steering import answers

__all__ = ["write_report", "report_html", "load_run"]


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"


def _summary(run: RunData) -> str:
    s = run.stats
    best = run.best
    if best is not None and best in s:
        b = s[best]
        who = "final agent" if run.final is not None else "best so far (no final agent named yet)"
        best_text = f"<a href='#' onclick='hgmShowNode({best});return false'>node {best}</a>: " \
                    f"{b.solved}/{b.evaluated} solved ({who})"
    else:
        best_text = "-"
    failed = sum(x.failed_expansions for x in s.values())
    cfg = run.config
    dollars = f"${run.dollars:.4f}" + ("" if run.dollars_complete else " + unknown prices")
    kv = [
        ("status", escape(run.status)), ("policy", escape(cfg.search.policy)),
        ("evaluations used", f"{run.evals_used} of {run.budget}"),
        ("agents", f"{len(s)} ({failed} failed rewrites)"), ("best agent", best_text),
        ("LLM cost", dollars), ("started", _when(run.created_at)),
        ("last activity", f"{_when(run.updated_at)} ({_duration(run.wall_s)} after the start)"),
        ("models", escape(f"self_improve {cfg.llm.self_improve}, downstream {cfg.llm.downstream}, "
                          f"diagnose {cfg.llm.diagnose}")),
    ]
    if run.initial_agent:
        kv.append(("initial agent", escape(run.initial_agent)))
    rows = [[k, v] for k, v in kv]
    usage_rows = [[escape(r), f"{u.calls:,}", f"{u.prompt_tokens:,}", f"{u.completion_tokens:,}",
                   f"{u.known_cost_usd:.4f}" + ("" if u.cost_usd is not None else " +?")]
                  for r, u in ((r, run.usage[r]) for r in run.roles())]
    usage = table(["role", "calls", "prompt tokens", "completion tokens", "$"], usage_rows, right={1, 2, 3, 4}) \
        if usage_rows else "<p class='muted'>No LLM calls recorded.</p>"
    return (f"<section id='summary'><h2>Run</h2><div class='cols'><div>{table([], rows, cls='kv')}</div>"
            f"<div><h4>LLM usage by role</h4>{usage}</div></div></section>")


def _schedule(run: RunData) -> str:
    """The policy's own schedule: dgm-paper's staged evaluation per agent (stage reached, why it stopped
    or went on, archived), sica's iterations (base and rewriter), best-of-n's pass@k per task."""
    policy = run.config.search.policy
    noted = [s for s in run.stats.values() if s.schedule]
    html = ""
    if noted and policy != "best-of-n":
        what = {"dgm-paper": "Staged evaluation (dgm-paper): the stage each agent reached and why it stopped or "
                             "went on", "sica": "SICA's iterations: each child's base agent and the agent that "
                             "rewrote it"}.get(policy, "Schedule")
        rows = [[f"node {s.id}", f"{count_text(s.solved)}/{s.evaluated}", escape(s.schedule)] for s in noted]
        html += f"<h3>{escape(what)}</h3>" + table(["agent", "own solved / evaluated", "schedule"], rows,
                                                   right={1}, cls="schedule")
    summary = best_of_n_summary(run.evaluations) if policy == "best-of-n" else None
    if summary:
        ks = summary["ks"]
        overall = [[f"pass@{k}", f"{m:.3f}", "-" if math.isnan(h) else f"± {h:.3f}"]
                   for k in ks for m, h in [summary["overall"][k]]]
        per_task = [[escape(t), str(v["n"]), count_text(v["c"]), *(f"{v[k]:.3f}" for k in ks)]
                    for t, v in sorted(summary["tasks"].items())]
        html += ("<h3>best-of-n: the initial agent, repeated (pass@k, Chen et al. 2021's unbiased estimator; "
                 "mean over tasks, 95% Student-t CI)</h3>" + table(["", "mean over tasks", "95% CI"], overall,
                                                                     right={1, 2}, cls="passk")
                 + "<details><summary>per task</summary>"
                 + table(["task", "attempts n", "solved c", *(f"pass@{k}" for k in ks)], per_task,
                         right=set(range(1, 3 + len(ks))), cls="passk-tasks") + "</details>")
    return f"<section id='schedule'><h2>Evaluation schedule ({escape(policy)})</h2>{html}</section>" if html else ""


def steering_html(run: RunData) -> str:
    """The interventions as a timeline, and the agents' requests with their answers."""
    if not run.interventions and not run.requests:
        return ""
    rows = [[escape(_when(i.created_at)), escape(i.who), escape(i.describe())] for i in run.interventions]
    out = "<section id='steering'><h2>Steering</h2>"
    out += table(["when", "who", "what"], rows, cls="timeline") if rows else \
        "<p class='muted'>Nobody has steered this run.</p>"
    if run.requests:
        decided = answers(run.interventions)
        req_rows = []
        for r in run.requests:
            a = decided.get(r.id)
            state = "open" if a is None else f"{a.action.value} by {a.who}" + (f": {a.why}" if a.why else "")
            req_rows.append([str(r.id), escape(_when(r.created_at)), f"node {r.node_id}", escape(r.kind.value),
                             escape(r.what), escape(r.why), escape(state)])
        out += "<h4>Agents' requests</h4>" + table(["#", "when", "asked by", "kind", "what", "why", "answer"],
                                                    req_rows, cls="requests")
    return out + "</section>"


def report_html(run: RunData, out_dir: Path) -> str:
    """The report page; links to logs are relative to `out_dir` (where the file will be)."""
    panels = node_panels(run, out_dir)
    body = (
        _summary(run)
        + "<section id='tree-section'><h2>Tree of agents</h2><p class='muted'>Colour: own success rate or CMP "
        "(buttons); size: evaluations; star: final agent; orange ring: finalist; red cross: a rewrite that "
        "produced no child. Drag to pan, scroll to zoom, double-click to reset, click an agent for its "
        "details.</p><div class='treebox'>"
        # The panel comes first in the page so the plot is drawn at its final width (CSS puts it right).
         + "<div id='panel'><p class='muted'>Click an agent in the tree to see why it was made, its diff "
        "against its parent, and its evaluations.</p></div>"
        + "<div class='treeplot'>"
        + figure_html(tree_figure(run), "tree")
        + "</div></div></section>"
        + _schedule(run)
        + "<section id='curves'><h2>Over the run</h2>"
        + figure_html(curves_figure(run), "curves-plot")
        + "</section><section id='matrix'><h2>Agents x tasks</h2>"
        + figure_html(matrix_figure(run), "matrix-plot")
        + "</section>"
        + steering_html(run)
        + "<section id='config'><details><summary>Resolved configuration</summary><pre>"
        + escape(dump_config(run.config))
        + "</pre></details></section>"
    )
    scripts = json_script("hgm-panels", panels) + f"<script>{asset('tree_panel.js')}</script>"
    subtitle = f"{escape(str(run.run_dir))} · {escape(run.status)} · {len(run.stats)} agents · " \
               f"{run.evals_used} evaluations used"
    return render_page(f"hgm run {run.run_dir.name}", subtitle, body, scripts=scripts, css=diff_css())


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the report of the run in `run_dir` to `out` (default RUN_DIR/report.html)."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise UserError(f"no hgm run in {run_dir} (missing run.sqlite); give a run directory made by `hgm run` "
                        "or `hgm simulate --run-dir`")
    out = Path(out) if out is not None else run_dir / "report.html"
    if out.is_dir():
        raise UserError(f"{out} is a directory; give -o a file name such as {out / 'report.html'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    html = report_html(load_run(run_dir), out.parent)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(html)
    os.replace(tmp, out)  # a browser reloading the file never sees half of it
    return out
