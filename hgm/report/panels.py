"""A node's panel: the HTML shown when an agent is clicked in the report's tree.

Why the agent exists (the rewrite that made it: entry task, diagnosis, commit message), the diff of
its code against its parent from the run's archive (pygments), its evaluations with links to the
logs on disk, and its rewrites that failed. Nodes whose code is not in an archive (simulated runs)
get every part but the diff.
"""

from __future__ import annotations

import json
import os
import re
from html import escape
from pathlib import Path
from urllib.parse import quote

import git
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from hgm.archive import Archive
from hgm.domain import EvaluationRow, ExpansionRow, ExpansionStatus, NodeRow, count_text
from hgm.errors import UserError
from hgm.report.data import RunData

MAX_DIFF_CHARS = 200_000
DIFF_CSS_CLASS = "diff"
_SHA = re.compile(r"^[0-9a-f]{40}$")


def diff_css() -> str:
    css: str = HtmlFormatter(style="default").get_style_defs(f".{DIFF_CSS_CLASS}")  # type: ignore[no-untyped-call]  # untyped in types-Pygments
    return css


class Diffs:
    """Diffs of nodes against their parents, from RUN_DIR/archive when there is one."""

    def __init__(self, run_dir: Path) -> None:
        self.archive: Archive | None = None
        if (run_dir / "archive").is_dir():
            try:
                self.archive = Archive.open(run_dir / "archive")
            except UserError:  # not a git repository
                self.archive = None

    def of(self, parent: str | None, child: str | None) -> str | None:
        """The unified diff, or None when the code is not in an archive."""
        if self.archive is None or not (parent and child and _SHA.match(parent) and _SHA.match(child)):
            return None
        try:
            return self.archive.diff(parent, child)
        except git.GitCommandError as e:
            return f"(the archive could not diff {parent[:12]}..{child[:12]}: {e.stderr.strip()})"


def _link(run: RunData, out_dir: Path, rel: str | None, label: str) -> str:
    if not rel:
        return ""
    target = run.run_dir / rel
    if not target.exists():
        return ""
    href = quote(os.path.relpath(target.resolve(), out_dir.resolve()))
    return f'<a href="{href}" target="_blank">{escape(label)}</a>'


def _eval_links(run: RunData, out_dir: Path, e: EvaluationRow) -> str:
    if not e.log_dir:
        return ""
    d = run.run_dir / e.log_dir
    tests = sorted(p.name for p in d.glob("test*.txt")) if d.is_dir() else []
    links = [
        _link(run, out_dir, f"{e.log_dir}/agent/chat.md", "chat"),
        _link(run, out_dir, f"{e.log_dir}/patch.diff", "patch"),
    ]
    links += [_link(run, out_dir, f"{e.log_dir}/{t}", "tests") for t in tests[:1]]
    links.append(_link(run, out_dir, e.log_dir, "logs"))
    return " ".join(x for x in links if x)


def _num(v: float | None, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def _evaluations(run: RunData, out_dir: Path, evals: list[EvaluationRow]) -> str:
    if not evals:
        return "<p class='muted'>No evaluations yet.</p>"
    rows = []
    for e in evals:
        detail = e.detail or (e.error_type or "")
        flag = f"<br><span class='flag'>{escape(e.flag)}</span>" if e.flag else ""
        rows.append(
            f"<tr><td>{escape(e.task_id)}<div class='detail'>{escape(detail[:200])}</div></td>"
            f"<td class='st {e.status.value}'>{e.status.value}{'' if e.score is None else f' {e.score:.3f}'}{flag}</td>"
            f"<td class='r'>{e.prompt_tokens:,} / {e.completion_tokens:,}</td>"
            f"<td class='r'>{'?' if e.cost_usd is None else f'{e.cost_usd:.4f}'}</td>"
            f"<td class='r'>{_num(e.agent_s, '.1f')}</td><td class='r'>{_num(e.test_s, '.1f')}</td>"
            f"<td>{_eval_links(run, out_dir, e)}</td></tr>")
    return ("<table class='evals'><tr><th>task</th><th>status</th><th class='r'>tokens in / out</th>"
            "<th class='r'>$</th><th class='r'>agent s</th><th class='r'>test s</th><th>logs</th></tr>"
            + "".join(rows) + "</table>")


def _diagnosis(run: RunData, x: ExpansionRow) -> str:
    if not x.log_dir:
        return ""
    path = run.run_dir / x.log_dir / "diagnosis.json"
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    parts = [f"<dt>{escape(k.replace('_', ' '))}</dt><dd>{escape(str(plan[k]))}</dd>"
             for k in ("log_summary", "root_cause", "improvement", "problem_statement") if plan.get(k)]
    return "<dl class='diagnosis'>" + "".join(parts) + "</dl>" + _memory(run, x)


def _memory(run: RunData, x: ExpansionRow) -> str:
    """A target's rewrite: DARWIN's memory file the rewriter was given (memory.json in its logs)."""
    path = run.run_dir / (x.log_dir or "") / "memory.json"
    if not x.log_dir or not path.is_file():
        return ""
    try:
        memory = json.loads(path.read_text())
    except ValueError:
        return ""
    rows = "".join(
        f"<tr><td>node {escape(str(m.get('node')))}</td><td>{escape(str(m.get('modification', '')))}</td>"
        f"<td>{escape(str(m.get('reason', ''))[:300])}</td><td>{_signed(m.get('score_change'))}</td></tr>"
        for m in memory.get("modifications", []))
    table = ("<table><tr><th>version</th><th>modification</th><th>reason</th><th>score change</th></tr>"
             f"{rows}</table>") if rows else "<p class='muted'>(no earlier modifications in this lineage)</p>"
    return f"<h4>Memory the rewriter was given (HGM_MEMORY.json)</h4>{table}"


def _signed(value: object) -> str:
    return f"{value:+.3f}" if isinstance(value, int | float) else "-"


def _origin(run: RunData, out_dir: Path, node: NodeRow, made_by: ExpansionRow | None) -> str:
    if node.parent_id is None:
        where = f" from {escape(run.initial_agent)}" if run.initial_agent else ""
        return f"<p>The initial agent{where}.</p>"
    head = f"<p>Rewrite of <a href='#' data-node='{node.parent_id}'>node {node.parent_id}</a>"
    if made_by is not None:
        head += f" (expansion {made_by.id}" + (
            f", entry task {escape(made_by.entry_task)}" if made_by.entry_task else ""
        )
        head += f"{', $' + format(made_by.cost_usd, '.4f') if made_by.cost_usd is not None else ''}) "
        head += _link(run, out_dir, made_by.log_dir, "rewrite logs")
    head += "</p>"
    message = f"<pre class='message'>{escape(node.message.strip())}</pre>" if node.message.strip() else ""
    return head + (_diagnosis(run, made_by) if made_by else "") + message


def _failed_rewrites(run: RunData, out_dir: Path, rows: list[ExpansionRow]) -> str:
    if not rows:
        return ""
    items = "".join(
        f"<li><span class='st {x.status.value}'>{x.status.value}</span> rewrite {x.id}"
        f"{' (' + escape(x.error_type) + ')' if x.error_type else ''}: {escape((x.reason or '')[:300])} "
        f"{_link(run, out_dir, x.log_dir, 'logs')}</li>" for x in rows)
    return f"<h4>Rewrites of this agent that produced no child ({len(rows)})</h4><ul>{items}</ul>"


def _diff_html(diffs: Diffs, parent: str | None, child: str | None, is_root: bool) -> str:
    if is_root:
        return ""
    text = diffs.of(parent, child)
    if text is None:
        return (
            "<h4>Diff against its parent</h4><p class='muted'>No code archive for this run (e.g. a simulated run).</p>"
        )
    if not text.strip():
        return "<h4>Diff against its parent</h4><p class='muted'>(no change)</p>"
    cut = ""
    if len(text) > MAX_DIFF_CHARS:
        cut = f"<p class='muted'>Diff cut at {MAX_DIFF_CHARS:,} of {len(text):,} characters.</p>"
        text = text[:MAX_DIFF_CHARS]
    return (
        "<h4>Diff against its parent</h4>" + cut + highlight(text, DiffLexer(), HtmlFormatter(cssclass=DIFF_CSS_CLASS))
    )


def node_panels(run: RunData, out_dir: Path) -> dict[str, str]:
    """node id (as a string) -> the panel's HTML."""
    diffs = Diffs(run.run_dir)
    nodes = {n.id: n for n in run.nodes}
    by_node: dict[int, list[EvaluationRow]] = {}
    for e in run.evaluations:
        by_node.setdefault(e.node_id, []).append(e)
    made_by = {x.child_id: x for x in run.expansions if x.child_id is not None}
    no_child: dict[int, list[ExpansionRow]] = {}
    for x in run.expansions:
        if x.status != ExpansionStatus.COMMITTED:
            no_child.setdefault(x.parent_id, []).append(x)
    finalists = set(run.finalists)
    panels = {}
    for s in run.stats.values():
        marks = (" <span class='mark final'>final agent</span>" if s.final else "") + \
            (" <span class='mark finalist'>finalist</span>" if s.id in finalists else "")
        cmp = f"{s.cmp:.2f}" if s.cmp is not None else "-"
        rate = f" ({s.solved / s.evaluated:.0%})" if s.evaluated else ""
        children = ", ".join(f"<a href='#' data-node='{c}'>{c}</a>" for c in s.children) or "none"
        extra = (f", {s.in_flight} in flight" if s.in_flight else "") + \
            (f", {s.infra_errors} infra errors" if s.infra_errors else "")
        panels[str(s.id)] = (
            f"<h3 class='node-title'>Node {s.id} <code>{escape((s.commit or '')[:12])}</code>{marks}</h3>"
            f"<p>own {count_text(s.solved)}/{s.evaluated}{rate}{extra} · "
            f"clade {count_text(s.clade_solved)}/{s.clade_evaluated}, "
            f"CMP {cmp} · children: {children} · failed rewrites {s.failed_expansions}</p>"
            + _origin(run, out_dir, nodes[s.id], made_by.get(s.id))
            + _diff_html(diffs, nodes[s.parent_id].commit if s.parent_id is not None else None, s.commit,
                         s.parent_id is None)
            + f"<h4>Evaluations ({len(by_node.get(s.id, []))})</h4>" + _evaluations(run, out_dir, by_node.get(s.id, []))
            + _failed_rewrites(run, out_dir, no_child.get(s.id, [])))
    return panels
