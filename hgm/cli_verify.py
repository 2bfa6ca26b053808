"""`hgm verify` and `hgm replay`: re-check a recorded run without an LLM or a key (registered by hgm/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hgm.errors import UserError
from hgm.markup import literal

FORMATS = ("text", "json")


def _format(format: str) -> None:
    if format not in FORMATS:
        raise UserError(f"unknown --format {format!r}; use {' or '.join(FORMATS)}")


def verify(
    run_dir: Annotated[Path, typer.Argument(help="Run directory to re-check (only read).")],
    sample: Annotated[int | None, typer.Option(
        "--sample", help="Re-grade N counted evaluations drawn at random (default: all).")] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed of --sample's draw (default: random, printed).")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Re-grades run at once.")] = 1,
    source: Annotated[Path | None, typer.Option(
        "--from", help="Polyglot tree to re-grade with (default: the run's).")] = None,
    sandbox: Annotated[str | None, typer.Option("--sandbox", help="Sandbox backend (default: the run's).")] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Keep each re-grade's logs in this directory.")] = None,
    format: Annotated[str, typer.Option("--format", help="text (tables) or json.")] = "text",
) -> None:
    """Re-grade a run's stored solutions in fresh sandboxes and check its store's integrity; no LLM, no key.

    Exit 1 on any mismatch (flaky, tampered) or integrity failure; 3 when there is none but some re-grades
    could not run (infra); 0 otherwise."""
    from hgm.verify import Regrade, Verdict, verify_run

    _format(format)
    if sample is not None and sample < 1:
        raise UserError("--sample must be at least 1")
    err = Console(stderr=True)
    with Progress(TextColumn("[bold]re-grading[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=err, transient=True) as progress:
        bar = progress.add_task("", total=None)
        bad: list[int] = []

        def on_done(r: Regrade) -> None:
            if r.verdict != Verdict.AGREES:
                bad.append(r.eval_id)
            progress.update(bar, advance=1, description=f"{len(bad)} not agreeing")

        report = verify_run(run_dir, sample=sample, seed=seed, workers=workers, benchmark_path=source,
                            sandbox_backend=sandbox, log_root=output,
                            on_start=lambda n: progress.update(bar, total=n), on_done=on_done)
    if format == "json":
        print(json.dumps(report.to_json(), indent=2))
        raise typer.Exit(report.exit_code())
    out = Console(soft_wrap=True, highlight=False)
    if report.sample_seed is not None:
        out.print(f"re-graded a sample of {len(report.regrades)} of {report.counted} counted evaluations "
                  f"(seed {report.sample_seed}; --seed {report.sample_seed} draws it again)")
    checks = Table("integrity check", "checked", "result", title=f"hgm verify {literal(run_dir)}", title_justify="left")
    for c in report.checks:
        checks.add_row(c.name, str(c.checked), "[green]ok[/]" if c.ok else
                       f"[red]{len(c.failures)} failed[/]: " + literal("; ".join(c.failures[:5]))
                       + (f" (and {len(c.failures) - 5} more)" if len(c.failures) > 5 else ""))
    out.print(checks)
    counts = {v: sum(r.verdict == v for r in report.regrades) for v in
              (Verdict.AGREES, Verdict.FLAKY, Verdict.TAMPERED, Verdict.INFRA)}
    summary = Table("re-graded", "agrees", "flaky", "tampered", "infra (not counted)", title_justify="left")
    summary.add_row(f"{len(report.regrades)} of {report.counted}", *(str(counts[v]) for v in counts))
    out.print(summary)
    named = [r for r in report.regrades if r.verdict != Verdict.AGREES]
    if named:
        table = Table("eval", "node", "task", "stored", "re-graded", "verdict", "why", title_justify="left")
        for r in named:
            style = "yellow" if r.verdict == Verdict.INFRA else "red"
            table.add_row(str(r.eval_id), str(r.node_id), r.task_id, r.stored, ", ".join(r.regraded) or "-",
                          f"[{style}]{r.verdict}[/]", literal(r.detail))
        out.print(table)
    code = report.exit_code()
    verdict = {0: "[green]verified: every re-grade agrees and every check holds[/]",
               1: f"[red]NOT verified: {len(report.mismatches)} mismatches, {len(report.failed_checks)} failed "
                  "checks[/]",
               3: f"[yellow]no mismatch, but {len(report.infra)} evaluations could not be re-graded (infra)[/]"}[code]
    out.print(verdict)
    raise typer.Exit(code)


def replay(
    run_dir: Annotated[Path, typer.Argument(help="Recorded run directory (only read).")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="New run directory for the replay (default: RUN-replay).")] = None,
    agent: Annotated[Path | None, typer.Option(
        "--agent", help="Start from this agent directory instead of the recorded root agent.")] = None,
    source: Annotated[Path | None, typer.Option("--from", help="Polyglot tree (default: the run's).")] = None,
    sandbox: Annotated[str | None, typer.Option("--sandbox", help="Sandbox backend (default: the run's).")] = None,
    format: Annotated[str, typer.Option("--format", help="text (tables) or json.")] = "text",
) -> None:
    """Re-run a recorded run's decisions in their recorded order with every LLM answer served from its store (no
    key, no network), real sandboxes; report where an outcome or an LLM request diverges. Exit 1 on any divergence."""
    from hgm.replay import ReplayReport, replay_run

    _format(format)
    out = output or run_dir.with_name(run_dir.name + "-replay")
    err = Console(stderr=True)
    with Progress(TextColumn("[bold]replaying[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=err, transient=True) as progress:
        bar = progress.add_task("", total=None)

        def on_job(name: str, report: ReplayReport) -> None:
            progress.update(bar, advance=1, description=f"{literal(name)}; {len(report.divergences)} divergences")

        report = replay_run(run_dir, out, agent=agent, benchmark_path=source, sandbox_backend=sandbox,
                            on_start=lambda n: progress.update(bar, total=n), on_job=on_job)
    if format == "json":
        print(json.dumps(report.to_json(), indent=2))
        raise typer.Exit(1 if report.divergences else 0)
    show = Console(soft_wrap=True, highlight=False)
    show.print(f"replayed {report.replayed} jobs of {literal(run_dir)} into {literal(out)} "
               f"({report.llm_calls} recorded LLM answers served, {report.copied} infra-error rows copied, not re-run)")
    if report.divergences:
        table = Table(
            "kind", "where", "what", title="divergences from the record, in replay order", title_justify="left"
        )
        for d in report.divergences:
            table.add_row(d.kind, literal(d.where), literal(d.what))
        show.print(table)
        show.print(f"[red]{len(report.divergences)} divergences[/]")
        raise typer.Exit(1)
    show.print("[green]reproduced: every outcome and every LLM request as recorded[/]")


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.command("replay")(replay)
