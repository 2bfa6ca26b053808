"""`hgm show-tree`: the run's tree of agents with own and clade results, from the store (read-only).

Counts: an agent's own `solved` / `evaluated` are its finished evaluations (solved, failed,
empty_patch; infra errors, interrupted and in-flight work count for nothing). Clade counts sum
them over the agent and all its descendants; CMP = clade solved / clade evaluated (paper §3).
Failed expansions are rewrites that produced no valid child; infra-error ones (interrupted
included) are counted apart. Evaluations whose verdict is flagged (suspected tampering: the tests
exited 0 without a trustworthy report, see hgm/benchmarks/polyglot/scoring.py) count as failed
and are shown with a marker, their number and (json) their tasks. A person's steering
(hgm/steering.py) marks nodes: vetoed, pinned, pending approval, rejected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from hgm.baselines import schedule_notes
from hgm.domain import EvalStatus, ExpansionStatus, MetaKey, Usage, VerdictFlag, count_text
from hgm.markup import literal
from hgm.policies import Tree as CladeCounters
from hgm.steering import folded
from hgm.store import RunStore
from hgm.store_protocol import Store

"""Store meta key holding the final agent's node id once a run has named it."""
TAMPERING_MARK = "(!)"
"""Marks an agent with flagged (suspected tampering) evaluations."""


@dataclass
class NodeStats:
    id: int
    parent_id: int | None
    commit: str | None
    message: str
    solved: float = 0
    """n_s: solved evaluations (a scored one counts its score; a whole number stays an int)."""
    evaluated: int = 0
    infra_errors: int = 0
    in_flight: int = 0
    clade_solved: float = 0
    clade_evaluated: int = 0
    children: list[int] = field(default_factory=list)
    failed_expansions: int = 0
    """Rewrites that produced no valid child (diagnosis, crash, empty diff, validation)."""
    infra_expansions: int = 0
    """Rewrites cut by an infra error or an interruption (redone; not the agent's failure)."""
    suspected_tampering: list[str] = field(default_factory=list)
    """Tasks whose evaluation was flagged VerdictFlag.SUSPECTED_TAMPERING (scored failed)."""
    final: bool = False
    schedule: str = ""
    """What the policy's own evaluation schedule did with this agent (dgm-paper's stages, sica's
    iterations; hgm.baselines.schedule_notes)."""
    marks: list[str] = field(default_factory=list)
    """A person's steering: vetoed, pinned, pending approval, rejected."""

    @property
    def cmp(self) -> float | None:
        """Clade-metaproductivity estimate, None before any clade evaluation."""
        return self.clade_solved / self.clade_evaluated if self.clade_evaluated else None


def tree_stats(store: Store, *, approval_gate: bool = False) -> dict[int, NodeStats]:
    """Per-node own and clade counts (insertion order = node id order, parents first). The
    counters are the search's own (policies.Tree), so show-tree and the policy never disagree.
    `approval_gate`: the run holds new children for approval (steer.approve), so unapproved ones are
    marked pending."""
    nodes = store.nodes()
    stats = {n.id: NodeStats(n.id, n.parent_id, n.commit, n.message) for n in nodes}
    counters = CladeCounters(n_tasks=0)
    for n in nodes:
        counters.add_agent(n.id, n.parent_id, n.commit)
        if n.parent_id is not None:
            stats[n.parent_id].children.append(n.id)
    for ev in store.evaluations():
        if ev.flag == VerdictFlag.SUSPECTED_TAMPERING:
            stats[ev.node_id].suspected_tampering.append(ev.task_id)
        if ev.success is not None:
            counters.record(ev.node_id, ev.success)
        elif ev.status == EvalStatus.INFRA_ERROR:
            stats[ev.node_id].infra_errors += 1
        else:
            stats[ev.node_id].in_flight += 1
    for ex in store.expansions():
        if ex.status == ExpansionStatus.FAILED:
            stats[ex.parent_id].failed_expansions += 1
        elif ex.status == ExpansionStatus.INFRA_ERROR:
            stats[ex.parent_id].infra_expansions += 1
    for s in stats.values():
        a = counters.agents[s.id]
        s.solved, s.evaluated = _count(a.own_successes), a.evals
        s.clade_solved, s.clade_evaluated = _count(a.clade_successes), round(a.clade_successes + a.clade_failures)
    state = folded(store.interventions(), approval_gate)
    root = nodes[0].id if nodes else -1
    for s in stats.values():
        s.marks = [mark for mark, on in (("vetoed", s.id in state.vetoed), ("pinned", s.id in state.pins),
                                         ("pending approval", state.pending(s.id, root)),
                                         ("rejected", s.id in state.rejected)) if on]
    final = store.get_meta(MetaKey.FINAL_AGENT)
    if final is not None and int(final) in stats:
        stats[int(final)].final = True
    policy_state = store.get_meta(MetaKey.POLICY_STATE)
    policy = store.config.search.policy if isinstance(store, RunStore) else ""  # MemoryStore: no config
    notes = schedule_notes(
        policy, json.loads(policy_state) if policy_state else None, store.expansions(), store.evaluations()
    )
    for node, note in notes.items():
        if node in stats:
            stats[node].schedule = note
    return stats


def _count(x: float) -> float:
    """A counter as stored: an int when whole (JSON shows 3, not 3.0), else rounded off float noise."""
    return int(round(x)) if abs(x - round(x)) < 1e-9 else round(x, 6)


def _label(s: NodeStats) -> str:
    commit = (s.commit or "-------")[:7]
    cmp = f"{s.cmp:.2f}" if s.cmp is not None else "-"
    parts = [f"node {s.id}", commit, f"own {count_text(s.solved)}/{s.evaluated}",
             f"clade {count_text(s.clade_solved)}/{s.clade_evaluated}",
             f"CMP {cmp}", f"children {len(s.children)}", f"failed expansions {s.failed_expansions}"]
    if s.in_flight:
        parts.append(f"in flight {s.in_flight}")
    if s.infra_errors:
        parts.append(f"infra-error evals {s.infra_errors}")
    if s.infra_expansions:
        parts.append(f"infra-error expansions {s.infra_expansions}")
    if s.suspected_tampering:
        parts.append(f"{TAMPERING_MARK} suspected tampering {len(s.suspected_tampering)}")
    parts += [f"[{mark}]" for mark in s.marks]
    return "  ".join(parts) + ("  <- FINAL" if s.final else "")


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line[:80]


def render_rich(stats: dict[int, NodeStats]) -> Tree | Text:
    roots = [s for s in stats.values() if s.parent_id is None]
    if not roots:
        return Text("(empty run: no agents yet)")
    top = Tree("[bold]agents[/]", guide_style="dim")

    def add(branch: Tree, s: NodeStats) -> None:
        label = Text(_label(s), style="bold green" if s.final else "")
        if s.suspected_tampering:
            label.highlight_words([f"{TAMPERING_MARK} suspected tampering {len(s.suspected_tampering)}"], "bold red")
        if (msg := _first_line(s.message)) and s.parent_id is not None:
            label.append(f"\n{msg}", style="dim")
        if s.schedule:
            label.append(f"\n{s.schedule}", style="cyan")
        sub = branch.add(label)
        for c in s.children:
            add(sub, stats[c])

    for r in roots:
        add(top, r)
    return top


def render_text(stats: dict[int, NodeStats]) -> str:
    lines: list[str] = []

    def add(s: NodeStats, depth: int) -> None:
        lines.append("  " * depth + _label(s))
        if s.schedule:
            lines.append("  " * depth + "    " + s.schedule)
        for c in s.children:
            add(stats[c], depth + 1)

    for r in (s for s in stats.values() if s.parent_id is None):
        add(r, 0)
    return "\n".join(lines) + "\n"


def render_json(stats: dict[int, NodeStats]) -> str:
    return json.dumps([{**asdict(s), "cmp": s.cmp} for s in stats.values()], indent=2) + "\n"


def render_dot(stats: dict[int, NodeStats]) -> str:
    out = ["digraph hgm {", "  node [shape=box, fontname=monospace];"]
    for s in stats.values():
        cmp = f"{s.cmp:.2f}" if s.cmp is not None else "-"
        label = f"{s.id} {(s.commit or '')[:7]}\\nown {count_text(s.solved)}/{s.evaluated}\\nclade " \
                f"{count_text(s.clade_solved)}/" \
                f"{s.clade_evaluated} CMP {cmp}"
        if s.suspected_tampering:
            label += f"\\n{TAMPERING_MARK} suspected tampering {len(s.suspected_tampering)}"
        style = ", style=filled, fillcolor=palegreen" if s.final else ""
        out.append(f'  n{s.id} [label="{label}"{style}];')
    out += [f"  n{s.parent_id} -> n{s.id};" for s in stats.values() if s.parent_id is not None]
    out.append("}")
    return "\n".join(out) + "\n"


def load(run_dir: Path) -> dict[int, NodeStats]:
    """Open the run read-only (safe while it runs) and compute the tree."""
    with RunStore.open(run_dir, readonly=True) as store:
        return tree_stats(store, approval_gate=store.config.steer.gates_rewrites)


ROLE_ORDER = ("self_improve", "downstream", "diagnose")
"""LLM roles in the order reports list them (others, if any, follow alphabetically)."""


def in_role_order(roles: Iterable[str]) -> list[str]:
    """`roles` in ROLE_ORDER, other roles after them alphabetically."""
    return sorted(roles, key=lambda r: (ROLE_ORDER.index(r) if r in ROLE_ORDER else len(ROLE_ORDER), r))


def load_usage(run_dir: Path) -> dict[str, Usage]:
    """LLM usage by role, read-only (works after the run too: every call is in the store)."""
    with RunStore.open(run_dir, readonly=True) as store:
        by_role = store.llm.usage_by_role()
    return {role: by_role[role] for role in in_role_order(by_role)}


def _usage_rows(by_role: dict[str, Usage]) -> list[list[str]]:
    def dollars(u: Usage) -> str:
        return f"{u.known_cost_usd:.4f}" + ("" if u.cost_usd is not None else "+?")

    rows = [[r, str(u.calls), str(u.prompt_tokens), str(u.completion_tokens), dollars(u)] for r, u in by_role.items()]
    total = sum(by_role.values(), Usage())
    return rows + [["total", str(total.calls), str(total.prompt_tokens), str(total.completion_tokens), dollars(total)]]


USAGE_HEADER = ["role", "calls", "prompt_tokens", "completion_tokens", "usd"]
"""usd: dollars at known prices; "+?" when some calls' prices are unknown."""


def usage_table(by_role: dict[str, Usage]) -> Table:
    t = Table(*USAGE_HEADER, title="LLM usage by role", title_justify="left")
    for row in _usage_rows(by_role):
        t.add_row(*map(literal, row))
    return t


def render_usage_text(by_role: dict[str, Usage]) -> str:
    rows = [USAGE_HEADER, *_usage_rows(by_role)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(USAGE_HEADER))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows)
    return "\nLLM usage by role\n" + "".join(lines)


def render_json_with_usage(stats: dict[int, NodeStats], by_role: dict[str, Usage]) -> str:
    return json.dumps({"nodes": [{**asdict(s), "cmp": s.cmp} for s in stats.values()],
                       "usage": {r: asdict(u) for r, u in by_role.items()}}, indent=2) + "\n"
