"""`hgm runs [DIR]`: the runs under a directory, one line each: status, budget used, agents, final
agent, dollars, start time (every store opened read-only)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hgm.domain import COUNTED, EvalStatus, ExpansionStatus, MetaKey, count_text
from hgm.errors import UserError
from hgm.report.data import is_run_dir, open_files, run_status
from hgm.steering import answers, folded
from hgm.store import RunStore


@dataclass(frozen=True)
class RunLine:
    run: str
    status: str
    policy: str
    evals_used: int
    budget: int
    agents: int
    final_agent: int | None
    final_solved: float | None
    final_evaluated: int | None
    dollars: float
    dollars_complete: bool
    started: float | None
    error: str | None = None
    """Set when the directory holds a store this hgm cannot read (the other fields are empty)."""
    steering: str = ""
    """A person's part: paused, children pending approval, agents' requests not answered."""


def find_runs(root: Path) -> list[Path]:
    """`root` itself if it is a run, else the runs directly under it and one level deeper."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; give the directory that holds your runs (default ./runs)")
    if is_run_dir(root):
        return [root]
    found = [p for p in sorted(root.iterdir()) if p.is_dir() and is_run_dir(p)]
    found += [q for p in sorted(root.iterdir()) if p.is_dir() and not is_run_dir(p)
              for q in sorted(p.iterdir()) if q.is_dir() and is_run_dir(q)]
    return found


def read_line(run_dir: Path, held: set[str]) -> RunLine:
    try:
        with RunStore.open(run_dir, readonly=True) as store:
            evals = store.evaluations()
            expansions = store.expansions()
            nodes = store.nodes()
            final = store.get_meta(MetaKey.FINAL_AGENT)
            created = store.get_meta(MetaKey.CREATED_AT)
            usage = store.llm.usage()
            config = store.config
            interventions = store.interventions()
            requests = store.agent_requests()
    except UserError as e:
        return RunLine(str(run_dir), "unreadable", "", 0, 0, 0, None, None, None, 0.0, True, None, str(e))
    final_id = int(final) if final is not None else None
    mine = [e for e in evals if e.node_id == final_id and e.status in COUNTED]
    in_flight = any(e.status == EvalStatus.IN_FLIGHT for e in evals) or \
        any(x.status == ExpansionStatus.IN_FLIGHT for x in expansions)
    state = folded(interventions, config.steer.gates_rewrites)
    pending = sum(state.pending(n.id, nodes[0].id) for n in nodes)
    unanswered = len({r.id for r in requests} - set(answers(interventions)))
    steering = ", ".join(text for text, on in (("paused", state.paused), (f"{pending} pending approval", pending),
                                                (f"{unanswered} requests open", unanswered)) if on)
    return RunLine(str(run_dir), run_status(run_dir, final_id, in_flight, held), config.search.policy,
                   sum(e.status in COUNTED for e in evals), config.search.max_task_evals + state.extra_evals,
                   len(nodes), final_id,
                   sum(e.success or 0.0 for e in mine) if final_id is not None else None,
                   len(mine) if final_id is not None else None, usage.known_cost_usd, usage.cost_usd is not None,
                   float(created) if created else None, steering=steering)


def list_runs(root: Path) -> list[RunLine]:
    held = open_files()
    lines = [read_line(p, held) for p in find_runs(root)]
    return sorted(lines, key=lambda r: (r.started or 0.0, r.run))


def render_text(lines: list[RunLine]) -> str:
    """Aligned columns, one run per line, never wrapped (safe to pipe into grep or less)."""
    head = ["run", "status", "policy", "evals used", "agents", "final agent", "dollars", "started"]
    rows = [head]
    for r in lines:
        if r.error:
            rows.append([r.run, r.status, "", "", "", "", "", r.error.splitlines()[0][:120]])
            continue
        final = (
            "-"
            if r.final_agent is None
            else f"node {r.final_agent} ({count_text(r.final_solved or 0)}/{r.final_evaluated})"
        )
        rows.append(
            [
                r.run,
                r.status + (f" ({r.steering})" if r.steering else ""),
                r.policy,
                f"{r.evals_used}/{r.budget}",
                str(r.agents),
                final,
                f"${r.dollars:.4f}" + ("" if r.dollars_complete else "+?"),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) if r.started else "-",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows)


def render_json(lines: list[RunLine]) -> str:
    return json.dumps([asdict(r) for r in lines], indent=2) + "\n"
