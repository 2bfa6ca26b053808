"""`hgm benchmark fetch|list|prepare|validate` and `hgm doctor` (registered by hgm/cli.py).

Each benchmark command takes the benchmark's name and runs that benchmark's entry in the registry
(hgm/benchmarks/registry.py), which owns the command."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hgm.benchmarks.entry import CommandOptions
from hgm.markup import literal

if TYPE_CHECKING:
    from hgm.doctor import Finding

BenchArg = Annotated[str, typer.Argument(help="Benchmark name: polyglot or swe-bench.")]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="SWE-bench: verified, lite, full, a Hub id, a "
                                                                  ".json/.jsonl/.parquet file or a task-repo directory "
                                                                  "(default: the config's benchmark.dataset).")]
TasksOpt = Annotated[str | None, typer.Option("--tasks", help="Comma-separated task ids (overrides --subset).")]
BaseOpt = Annotated[str | None, typer.Option("--base", help="SWE-bench task repos: base image for their Dockerfiles "
                                                            "(no registry: localhost/debian:bookworm).")]
FromOpt = Annotated[Path | None, typer.Option("--from", help="Local polyglot-benchmark tree (default: the fetched "
                                                             "copy).")]
LangOpt = Annotated[list[str] | None, typer.Option("--lang", help="Only this language (repeatable).")]


def result_console() -> Console:
    """Results: as wide as needed when written to a file or CI log (rich assumes 80 columns)."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def validate_with_progress(total: int, run: Callable[[Callable[[Any], None]], list[Any]]) -> tuple[list[Any], float]:
    """`run(on_done)` under a progress bar (stderr): unexpected results as they come, and one line per
    result when there is no live bar (a log). Returns (checks, wall seconds)."""
    out = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    start = time.monotonic()
    with Progress(*columns, console=out) as progress:
        bar = progress.add_task("validating", total=total)

        def done(check: Any) -> None:
            progress.advance(bar)
            if check.problem:
                progress.console.print(f"[red]UNEXPECTED[/] {check.task.id} ({check.kind}): {literal(check.problem)}")
            elif not out.is_terminal:
                n = int(progress.tasks[0].completed)
                out.print(f"[{n}/{total}] {check.task.id} {check.kind}: {check.status} ({check.seconds:.1f} s)")

        checks = run(done)
    return checks, time.monotonic() - start


def exit_on_unexpected(checks: list[Any], logs: Path) -> None:
    """List the unexpected results with their logs, say where all logs are; exit 1 if any."""
    bad = [c for c in checks if c.problem]
    for c in bad:
        result_console().print(f"[red]unexpected[/] {c.task.id} {c.kind}: {literal(c.problem)}  "
                               f"(log: {literal(c.output_path)})")
    result_console().print(f"logs: {literal(logs)}")
    if bad:
        raise typer.Exit(1)


def _run(command: str, name: str, options: CommandOptions) -> None:
    from hgm.benchmarks.registry import entry

    getattr(entry(name), command)(options)


def fetch(name: BenchArg,
          dest: Annotated[Path | None, typer.Option(
              "-o", "--output", help="Polyglot: clone here instead of the cache dir.")] = None,
          from_: Annotated[Path | None, typer.Option(
              "--from", help="Polyglot: copy this local polyglot-benchmark tree instead of cloning (offline).")] = None,
          dataset: DatasetOpt = None,
          subset: Annotated[str | None, typer.Option(help="SWE-bench subset (default: the config's).")] = None,
          tasks: TasksOpt = None,
          sandbox: Annotated[str | None, typer.Option(
              help="SWE-bench: docker or bwrap (default: the config's backend).")] = None,
          base: BaseOpt = None) -> None:
    """Polyglot: clone the benchmark at its pinned commit (needs github.com), or copy a local tree
    (--from). SWE-bench: pull (or build) the instance images of a subset with progress, and export what
    the sandbox backend needs."""
    _run("fetch", name, CommandOptions(output=dest, from_=from_, dataset=dataset, subset=subset, tasks=tasks,
                                       sandbox=sandbox, base=base))


def list_(name: BenchArg = "polyglot", from_: FromOpt = None, dataset: DatasetOpt = None) -> None:
    """The subsets with their task counts (per language; SWE-bench: per repository, and whether the
    dataset holds them)."""
    _run("list_subsets", name, CommandOptions(from_=from_, dataset=dataset))


def prepare(name: BenchArg, from_: FromOpt = None, lang: LangOpt = None,
            force: Annotated[bool, typer.Option(help="Prepare again even if ready.")] = False) -> None:
    """Install the shared, read-only test dependencies (npm, crates, jars, Go/C++ caches)."""
    _run("prepare", name, CommandOptions(from_=from_, lang=lang, force=force))


def validate(
    name: BenchArg,
    subset: Annotated[str, typer.Option(
        help="Polyglot: small, medium or all. SWE-bench: a subset (`hgm benchmark list swe-bench`) or a file of "
             "instance ids.")] = "all",
    lang: LangOpt = None,
    jobs: Annotated[int, typer.Option("--workers", min=1, help="Parallel test runs.")] = 2,
    sandbox: Annotated[str, typer.Option(help="bwrap or none (SWE-bench: docker or bwrap).")] = "bwrap",
    from_: FromOpt = None,
    log_dir: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Keep test logs here (default: a temp dir).")] = None,
    timeout: Annotated[float, typer.Option(help="Per test run, seconds.")] = 180.0,
    dataset: DatasetOpt = None,
    tasks: TasksOpt = None,
    base: BaseOpt = None,
) -> None:
    """Run every reference solution (must be solved) and untouched stub (must not be); SWE-bench:
    every gold patch (must be resolved) and unpatched base (must not be)."""
    _run("validate", name, CommandOptions(output=log_dir, from_=from_, dataset=dataset, subset=subset, tasks=tasks,
                                          sandbox=sandbox, base=base, lang=lang, workers=jobs, timeout=timeout))


def doctor(
    clean: Annotated[bool, typer.Option(
        "--clean", help="First remove leftover hgm containers (docker backend).")] = False,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="Also report this Ray cluster: nodes, slots, what each lacks.")] = None,
) -> None:
    """Check toolchains, sandbox and benchmark dependencies; print the fix for each problem."""
    from hgm.doctor import clean_docker, run_checks

    if clean:
        Console().print(literal(clean_docker()))
    findings = run_checks(ray_address)
    Console().print(doctor_table(findings))
    if not all(f.ok or f.optional for f in findings):
        sys.exit(1)


def doctor_table(findings: list[Finding]) -> Table:
    table = Table(title="hgm doctor")
    for col in ("check", "ok", "found", "fix"):
        table.add_column(col)
    for f in findings:
        table.add_row(literal(f.area), "[green]yes[/]" if f.ok else "[yellow]no[/]" if f.optional else "[red]NO[/]",
                      literal(f.what), literal(f.fix))
    return table


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    benchmark_app.command("fetch")(fetch)
    benchmark_app.command("list")(list_)
    benchmark_app.command("prepare")(prepare)
    benchmark_app.command("validate")(validate)
    app.command("doctor")(doctor)
