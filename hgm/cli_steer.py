"""`hgm steer RUN ...`: act on a live or stopped run (registered by hgm/cli.py).

Every action is a row in the run's store (hgm/steering.py) that the scheduler reads at its next
decision; `act` checks and records one, for this command and for `hgm serve`'s buttons alike.
The store is opened `live` (another process may be running the run: its work in flight is left
alone) and each write is one short transaction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from packaging.requirements import InvalidRequirement, Requirement
from rich.console import Console

from hgm.errors import UserError
from hgm.markup import literal
from hgm.steering import NODE_ACTIONS, Action, RequestKind, answers, default_who, folded
from hgm.store import RunStore

steer_app = typer.Typer(no_args_is_help=True, help="Steer a live or stopped run: veto, pin, hint, pause, budget, "
                                                    "approve rewrites, answer the agents' requests.")
out = Console(soft_wrap=True, highlight=False)


def act(store: RunStore, who: str, action: Action, *, node: int | None = None, text: str = "", count: int = 1,
        evals: int = 0, request: int | None = None, path: Path | None = None, why: str = "") -> str:
    """Check one intervention against the run and record it; what was done, in words. UserError
    (nothing recorded) says what is wrong."""
    run = store.run_dir
    rows = store.interventions()
    nodes = {n.id: n for n in store.nodes()}
    payload: dict[str, object] = {}
    if action in NODE_ACTIONS and node not in nodes:
        raise UserError(f"{run} has no node {node}; its nodes are {', '.join(map(str, nodes)) or 'none yet'} "
                        f"(`hgm show-tree {run}`)")
    if action in (Action.APPROVE, Action.REJECT):
        state = folded(rows, store.config.steer.gates_rewrites)
        root = min(nodes)
        if not state.gate:
            raise UserError(f"{run} does not wait for approvals (it was not started with --approve rewrites); "
                            "its children are evaluated at once")
        if node is None or not state.pending(node, root):
            decided = "the initial agent needs no approval" if node == root else "it is not waiting for a decision"
            raise UserError(f"node {node}: {decided}; `hgm steer {run} pending` lists the children that wait")
    if action in (Action.REJECT, Action.DECLINE) and not why.strip():
        raise UserError(f"{action.value} needs a reason: --why TEXT (the agent's next rewrite sees a decline's)")
    if action in (Action.HINT, Action.NOTE):
        if not text.strip():
            raise UserError(f"{action.value} needs a text")
        payload["text"] = text.strip()
    if action == Action.PIN:
        if count < 1:
            raise UserError("--count must be at least 1")
        payload["count"] = count
    if action == Action.BUDGET:
        if evals < 1:
            raise UserError("budget takes +N with N >= 1 task evaluations, e.g. `budget +20`")
        payload["evals"] = evals
    if action in (Action.GRANT, Action.DECLINE):
        requests = {r.id: r for r in store.agent_requests()}
        if request not in requests:
            raise UserError(f"{run} has no agent request {request}; `hgm steer {run} requests` lists them")
        answered = answers(rows).get(request)
        if answered is not None:
            raise UserError(f"request {request} was already answered: {answered.describe()} by {answered.who}")
        payload["request"] = request
        asked = requests[request]
        if action == Action.GRANT and asked.kind == RequestKind.FILE:
            if path is None or not Path(path).is_file():
                raise UserError(f"request {request} asks for a file ({asked.what}); grant it with --path FILE, an "
                                "existing file on this machine (mounted read-only into later rewrites' sandboxes)")
            payload["path"] = str(Path(path).resolve())
        if action == Action.GRANT and asked.kind == RequestKind.PACKAGE:
            try:
                payload["package"] = Requirement(asked.what).name
            except InvalidRequirement:
                raise UserError(f"request {request} names {asked.what!r}, which is not a Python package "
                                "requirement; decline it with --why") from None
    row = store.add_intervention(who, action, node, payload, why.strip())
    return f"recorded #{row}: {action.value}" + (f" node {node}" if node is not None else "") + \
        (f" request {request}" if request is not None else "") + "; the scheduler applies it at its next decision"


def _store(ctx: typer.Context) -> RunStore:
    return RunStore.open(ctx.obj, live=True)


def _do(ctx: typer.Context, action: Action, who: str | None, **kw: object) -> None:
    with _store(ctx) as store:
        out.print(act(store, who or default_who(), action, **kw))  # type: ignore[arg-type]


@steer_app.callback()
def _main(ctx: typer.Context,
          run: Annotated[Path, typer.Argument(help="Run directory (running or stopped).")]) -> None:
    """Steer a run; each action is recorded in its store and applied at the scheduler's next decision."""
    if not (Path(run) / "run.sqlite").is_file():
        raise UserError(f"no hgm run in {run} (missing run.sqlite); give a directory made by `hgm run`")
    ctx.obj = Path(run)


Why = Annotated[str, typer.Option("--why", help="Why (recorded).")]
Who = Annotated[str | None, typer.Option("--who", help="Who acts (recorded; default user@host).")]
Node = Annotated[int, typer.Argument(help="Node id (`hgm show-tree RUN`).")]


@steer_app.command("veto")
def veto(ctx: typer.Context, node: Node, why: Why = "", who: Who = None) -> None:
    """Never expand or evaluate this node again (its results and clade counters stay)."""
    _do(ctx, Action.VETO, who, node=node, why=why)


@steer_app.command("pin")
def pin(ctx: typer.Context, node: Node,
        count: Annotated[int, typer.Option(
            "--count", help="For this many rewrites.")] = 1, why: Why = "", who: Who = None) -> None:
    """Make this node the parent of the next rewrite(s), over the policy's choice."""
    _do(ctx, Action.PIN, who, node=node, count=count, why=why)


@steer_app.command("hint")
def hint(
    ctx: typer.Context,
    node: Node,
    text: Annotated[str, typer.Argument(help="The hint.")],
    why: Why = "",
    who: Who = None,
) -> None:
    """Add a hint to the diagnosis of this node's next rewrite."""
    _do(ctx, Action.HINT, who, node=node, text=text, why=why)


@steer_app.command("pause")
def pause(ctx: typer.Context, why: Why = "", who: Who = None) -> None:
    """Start no new job (work in flight finishes; the run waits until `resume`)."""
    _do(ctx, Action.PAUSE, who, why=why)


@steer_app.command("resume")
def resume(ctx: typer.Context, why: Why = "", who: Who = None) -> None:
    """Let a paused run start new jobs again."""
    _do(ctx, Action.RESUME, who, why=why)


@steer_app.command("budget")
def budget(ctx: typer.Context, more: Annotated[str, typer.Argument(help="+N: N more task evaluations.")],
           why: Why = "", who: Who = None) -> None:
    """Give the run more task evaluations."""
    if not more.lstrip("+").isdigit():
        raise UserError(f"budget takes +N (a number of task evaluations), not {more!r}")
    _do(ctx, Action.BUDGET, who, evals=int(more.lstrip("+")), why=why)


@steer_app.command("note")
def note(ctx: typer.Context, text: Annotated[str, typer.Argument(help="The note.")], who: Who = None) -> None:
    """Record a note in the run (shown in the report's timeline)."""
    _do(ctx, Action.NOTE, who, text=text)


@steer_app.command("approve")
def approve(ctx: typer.Context, node: Node, why: Why = "", who: Who = None) -> None:
    """Let a child that waits for approval be evaluated and chosen as a parent."""
    _do(ctx, Action.APPROVE, who, node=node, why=why)


@steer_app.command("reject")
def reject(
    ctx: typer.Context,
    node: Node,
    why: Annotated[str, typer.Option("--why", help="Why (required).")] = "",
    who: Who = None,
) -> None:
    """Keep a child that waits for approval out of the search for good."""
    _do(ctx, Action.REJECT, who, node=node, why=why)


@steer_app.command("grant")
def grant(ctx: typer.Context, request: Annotated[int, typer.Argument(help="Request id (`requests`).")],
          path: Annotated[Path | None, typer.Option(
              "--path", help="For a file request: the file to mount read-only.")] = None,
          why: Why = "", who: Who = None) -> None:
    """Grant an agent's request: a package may be used by later rewrites, a file is mounted into them."""
    _do(ctx, Action.GRANT, who, request=request, path=path, why=why)


@steer_app.command("decline")
def decline(ctx: typer.Context, request: Annotated[int, typer.Argument(help="Request id (`requests`).")],
            why: Annotated[str, typer.Option(
                "--why", help="The reason (the agent's next rewrite sees it).")] = "", who: Who = None) -> None:
    """Decline an agent's request; the reason is shown to the agent's next rewrite."""
    _do(ctx, Action.DECLINE, who, request=request, why=why)


@steer_app.command("pending")
def pending(ctx: typer.Context) -> None:
    """Children waiting for approval: each one's diagnosis and diff."""
    from hgm.archive import Archive

    with _store(ctx) as store:
        nodes = store.nodes()
        state = folded(store.interventions(), store.config.steer.gates_rewrites)
        waiting = [n for n in nodes if state.pending(n.id, nodes[0].id)]
        made_by = {x.child_id: x for x in store.expansions() if x.child_id is not None}
    if not state.gate:
        out.print("this run does not wait for approvals (start one with --approve rewrites)")
        return
    if not waiting:
        out.print("no child is waiting for approval")
        return
    commits = {n.id: n.commit for n in nodes}
    archive = Archive.open(store.run_dir / "archive")
    for n in waiting:
        x = made_by.get(n.id)
        out.print(f"[bold]node {n.id}[/] (child of node {n.parent_id}, rewrite {x.id if x else '?'}): "
                  f"{literal(n.message.splitlines()[0] if n.message else '')}")
        diagnosis = store.run_dir / x.log_dir / "diagnosis.json" if x is not None and x.log_dir else None
        if diagnosis is not None and diagnosis.is_file():
            plan = json.loads(diagnosis.read_text())
            for key in ("root_cause", "improvement"):
                out.print(f"  {key}: {literal(str(plan.get(key, '')))}")
        if n.parent_id is not None and commits[n.parent_id] and n.commit:
            out.print(literal(archive.diff(commits[n.parent_id], n.commit)))  # type: ignore[arg-type]
        out.print(f"  decide: hgm steer {store.run_dir} approve {n.id}   |   reject {n.id} --why TEXT\n")


@steer_app.command("requests")
def requests(ctx: typer.Context) -> None:
    """What the rewriting agents asked for, and the answers."""
    with _store(ctx) as store:
        asked = store.agent_requests()
        answered = answers(store.interventions())
    if not asked:
        out.print("no agent has asked for anything")
        return
    for r in asked:
        a = answered.get(r.id)
        state = "open" if a is None else f"{'granted' if a.action == Action.GRANT else 'declined'} by {a.who}" + \
            (f": {a.why}" if a.why else "")
        out.print(literal(f"#{r.id}  {r.kind.value}  {r.what}  (node {r.node_id}, rewrite {r.expansion_id}) "
                         f"why: {r.why}  [{state}]"))


@steer_app.command("history")
def history(ctx: typer.Context) -> None:
    """Every intervention so far, oldest first."""
    import time

    with _store(ctx) as store:
        rows = store.interventions()
    for r in rows:
        out.print(f"#{r.id}  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r.created_at))}  {literal(r.who)}  "
                  f"{literal(r.describe())}")
    if not rows:
        out.print("no interventions yet")


def serve(run: Annotated[Path, typer.Argument(help="Run directory (running or stopped).")],
          port: Annotated[int, typer.Option(
              "--port", min=0, max=65535, help="Port on 127.0.0.1 (default: a free one).")] = 0,
          who: Annotated[str | None, typer.Option(
              "--who", help="Who the page's actions are recorded as (default user@host).")] = None) -> None:
    """A local page of the live run: the tree, kept up to date, with the steering actions as buttons."""
    from hgm.serve import serve as serve_run

    def ready(url: str) -> None:
        out.print(f"serving {run} on {url}\n(127.0.0.1 only; the token in the URL is the key: share it with nobody; "
                  "Ctrl-C stops)", markup=False)
        out.file.flush()

    serve_run(run, port=port, who=who or default_who(), on_ready=ready)


def register(app: typer.Typer) -> None:
    app.add_typer(steer_app, name="steer")
    app.command("serve")(serve)
