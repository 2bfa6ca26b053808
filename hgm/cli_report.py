"""`hgm report`, `hgm compare`, `hgm runs` and `hgm solve` (registered by hgm/cli.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hgm.errors import UserError
from hgm.markup import literal


def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (it may still be running).")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="HTML file to write (default RUN/report.html).")] = None,
) -> None:
    """Write one self-contained HTML report of a run: tree, node details and diffs, curves, agents x tasks."""
    from hgm.report import write_report

    start = time.monotonic()
    with Console(stderr=True).status(f"reading {literal(run_dir)}"):
        out = write_report(run_dir, output)
    Console().print(f"report written to {literal(out)} ({out.stat().st_size / 1e6:.1f} MB, "
                    f"{time.monotonic() - start:.1f} s); "
                    f"open it in a browser, it works offline", soft_wrap=True, highlight=False)


def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (e.g. runs/*), one or more seeds per policy.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("compare.html"),
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="evals: curves over task evaluations used, the groups compared at the evaluations every run reached; "
                 "usd: curves over dollars spent, and the groups compared at the dollars every run reached as well.",
        ),
    ] = "evals",
) -> None:
    """Compare runs: grouped by policy and differing config, final score with a 95% CI across seeds, curves overlaid.

    Each run's best agent so far follows its own final rule (search.final_rule or its policy's);
    best-of-n runs also show pass@1 and pass@k over tasks.
    """
    from hgm.report.compare import write_comparison

    out = write_comparison(list(runs), output, by)
    Console().print(f"comparison of {len(runs)} runs written to {literal(out)}", soft_wrap=True, highlight=False)


def runs(
    directory: Annotated[Path, typer.Argument(help="Directory holding runs (or one run).")] = Path("runs"),
    format: Annotated[str, typer.Option("--format", help="text (one run a line) or json.")] = "text",
) -> None:
    """List runs: status, evaluations used of the budget, agents, final agent, dollars, start time."""
    from hgm.report import runs as runs_mod

    if format not in ("text", "json"):
        raise UserError(f"unknown --format {format!r}; use text or json")
    if not Path(directory).exists():
        raise UserError(f"{directory} does not exist; give the directory your runs are in (`hgm run --run-dir` "
                        "chose it; the default is ./runs)")
    lines = runs_mod.list_runs(directory)
    if format == "json":
        typer.echo(runs_mod.render_json(lines), nl=False)
    elif not lines:
        typer.echo(f"no runs in {directory}")
    else:
        typer.echo(runs_mod.render_text(lines), nl=False)


def solve(
    agent: Annotated[str, typer.Argument(help="`initial`, an agent directory, RUN:NODE or RUN:final.")],
    repo: Annotated[Path, typer.Option("--repo", help="Your git repository (never modified without --apply).")],
    issue: Annotated[Path | None, typer.Option("--issue", help="File holding the problem statement.")] = None,
    statement: Annotated[str | None, typer.Option("--statement", help="The problem statement as text.")] = None,
    llm: Annotated[str | None, typer.Option(
        "--llm", help="Model the agent uses (llm.downstream), e.g. deepseek-chat or scripted:FILE.")] = None,
    rev: Annotated[str, typer.Option("--rev", help="Commit of the repository the agent starts from.")] = "HEAD",
    language: Annotated[str | None, typer.Option(
        "--language", help="Told to the agent (default: the most common in the repository).")] = None,
    out: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Where the patch and logs go (default ./hgm-solve/REPO-TIME).")] = None,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Apply the patch to the repository's working tree (git apply).")] = False,
    sandbox: Annotated[str | None, typer.Option("--sandbox", help="Sandbox backend: bwrap, docker or none.")] = None,
    config: Annotated[Path | None, typer.Option(
        "-c", "--config", help="YAML config merged over the defaults (default for RUN:...: the run's config).")] = None,
    override: Annotated[list[str] | None, typer.Option(
        "--set", help="Set one config key, e.g. --set sandbox.agent_timeout_s=600 (repeatable).")] = None,
) -> None:
    """Run an agent (e.g. the best one a search found) on your own repository and problem; write the patch."""
    from hgm import solve as solve_mod
    from hgm.config import load_config, set_keys

    if (issue is None) == (statement is None):
        raise UserError("give the problem as exactly one of --issue FILE or --statement TEXT")
    if issue is not None and not issue.is_file():
        raise UserError(f"--issue {issue} is not a file; give a file holding the problem statement")
    text = issue.read_text() if issue is not None else str(statement)
    run_dir = solve_mod.run_of(agent)
    if config is None and run_dir is not None and (run_dir / "config.yaml").is_file():
        config = run_dir / "config.yaml"
    cfg = load_config(config, override or [])
    set_keys(cfg, {"llm.downstream": llm or None, "sandbox.backend": sandbox or None})
    out = out or Path("hgm-solve") / f"{Path(repo).resolve().name}-{time.strftime('%Y%m%d-%H%M%S')}"
    err = Console(stderr=True)
    with err.status(f"[bold]{literal(agent)}[/] is working on a copy of {literal(repo)} in the sandbox"):
        r = solve_mod.solve(agent, repo, text, config=cfg, out_dir=out, rev=rev, language=language, apply=apply,
                            console=err)
    show = Console()
    cost = "unknown" if r.cost_usd is None else f"${r.cost_usd:.4f}"
    how = "timed out" if r.timed_out else f"exit {r.exit_code}"
    show.print(literal(f"agent: {r.agent} ({how}, {r.agent_s:.0f} s)"), soft_wrap=True, highlight=False)
    show.print(literal(f"tokens: {r.prompt_tokens} in / {r.completion_tokens} out   cost: {cost}   model: {r.model}"),
               soft_wrap=True, highlight=False)
    if r.llm_failure:
        show.print(f"[yellow]the LLM gateway cut the agent off:[/] {literal(r.llm_failure)}", soft_wrap=True)
    if r.changed_files:
        done = f"applied to {r.repo}" if r.applied else f"not applied; apply it with: git -C {r.repo} apply {r.patch}"
        show.print(literal(f"patch: {r.patch} ({r.changed_files} file{'s' if r.changed_files != 1 else ''} changed; "
                           f"{done})"),
                   soft_wrap=True, highlight=False)
    else:
        show.print("[yellow]the agent changed nothing[/]; its chat log says why: "
                   f"{literal(Path(r.out_dir) / 'agent' / 'chat.md')}",
                   soft_wrap=True)
    show.print(literal(f"chat log: {Path(r.out_dir) / 'agent' / 'chat.md'}\nall logs: {r.out_dir}"), soft_wrap=True,
               highlight=False)
    if not r.changed_files:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("compare")(compare)
    app.command("runs")(runs)
    app.command("solve")(solve)
