"""`hgm benchmark fetch|list|prepare|validate` and `hgm doctor` (registered by hgm/cli.py).

Each benchmark command takes the benchmark's name: polyglot, or swe-bench (whose commands live in
hgm/cli_swe_bench.py)."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hgm.errors import UserError

BenchArg = Annotated[str, typer.Argument(help="Benchmark name: polyglot or swe-bench.")]
DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="SWE-bench: verified, lite, full, a Hub id, a .json/.jsonl/.parquet file or a task-repo directory (default: the config's benchmark.dataset).")]
TasksOpt = Annotated[Optional[str], typer.Option("--tasks", help="Comma-separated task ids (overrides --subset).")]
BaseOpt = Annotated[Optional[str], typer.Option("--base", help="SWE-bench task repos: base image for their Dockerfiles (no registry: localhost/debian:bookworm).")]
FromOpt = Annotated[Optional[Path], typer.Option("--from", help="Local polyglot-benchmark tree (default: the fetched copy).")]
LangOpt = Annotated[Optional[list[str]], typer.Option("--lang", help="Only this language (repeatable).")]


def _polyglot(name: str) -> None:
    if name != "polyglot":
        raise UserError(f"unknown benchmark {name!r}; known: polyglot, swe-bench")


def _tree(from_: Path | None) -> Path | None:
    """--from, else the config's benchmark.path (None: the fetched copy)."""
    if from_ is not None:
        return from_
    from hgm.config import load_config

    return load_config().benchmark.path


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
                progress.console.print(f"[red]UNEXPECTED[/] {check.task.id} ({check.kind}): {check.problem}")
            elif not out.is_terminal:
                n = int(progress.tasks[0].completed)
                out.print(f"[{n}/{total}] {check.task.id} {check.kind}: {check.status} ({check.seconds:.1f} s)")

        checks = run(done)
    return checks, time.monotonic() - start


def exit_on_unexpected(checks: list[Any], logs: Path) -> None:
    """List the unexpected results with their logs, say where all logs are; exit 1 if any."""
    bad = [c for c in checks if c.problem]
    for c in bad:
        result_console().print(f"[red]unexpected[/] {c.task.id} {c.kind}: {c.problem}  (log: {c.output_path})")
    result_console().print(f"logs: {logs}")
    if bad:
        raise typer.Exit(1)


def _languages(langs: list[str] | None) -> list[str]:
    from hgm.benchmarks.polyglot.loader import LANGUAGES

    for lang in langs or []:
        if lang not in LANGUAGES:
            raise UserError(f"unknown language {lang!r}; valid: {', '.join(LANGUAGES)}")
    return list(langs or LANGUAGES)


def fetch(name: BenchArg, dest: Annotated[Optional[Path], typer.Option("-o", "--output", help="Polyglot: clone here instead of the cache dir.")] = None,
          from_: Annotated[Optional[Path], typer.Option("--from", help="Polyglot: copy this local polyglot-benchmark tree instead of cloning (offline).")] = None,
          dataset: DatasetOpt = None, subset: Annotated[Optional[str], typer.Option(help="SWE-bench subset (default: the config's).")] = None,
          tasks: TasksOpt = None, sandbox: Annotated[Optional[str], typer.Option(help="SWE-bench: docker or bwrap (default: the config's backend).")] = None,
          base: BaseOpt = None) -> None:
    """Polyglot: clone the benchmark at its pinned commit (needs github.com), or copy a local tree
    (--from). SWE-bench: pull (or build) the instance images of a subset with progress, and export what
    the sandbox backend needs."""
    from hgm.benchmarks.polyglot.loader import UPSTREAM_COMMIT, install_copy
    from hgm.benchmarks.polyglot.loader import fetch as do_fetch

    if name == "swe-bench":
        from hgm.cli_swe_bench import fetch as swe_fetch

        if from_ is not None or dest is not None:
            raise UserError("--from and -o are for polyglot; SWE-bench instances come from --dataset "
                            "(a Hub name, a local file or a task-repo directory)")
        return swe_fetch(dataset, subset, tasks, sandbox, base)
    _polyglot(name)
    if from_ is not None:
        with Console(stderr=True).status(f"copying {from_}"):
            path = install_copy(from_, dest)
        where = "commands use it without --from" if dest is None else f"pass --from {path} to commands"
        Console().print(f"polyglot copied from {from_} to {path}; {where}")
        return
    with Console(stderr=True).status(f"cloning the Polyglot benchmark at {UPSTREAM_COMMIT[:12]}"):
        path = do_fetch(dest)
    Console().print(f"polyglot at {UPSTREAM_COMMIT[:12]} in {path}")


def list_(name: BenchArg = "polyglot", from_: FromOpt = None, dataset: DatasetOpt = None) -> None:
    """The subsets with their task counts (per language; SWE-bench: per repository, and whether the
    dataset holds them)."""
    from hgm.benchmarks.polyglot import SUBSETS, PolyglotBenchmark

    if name == "swe-bench":
        from hgm.cli_swe_bench import list_subsets

        return list_subsets(dataset)
    _polyglot(name)
    bench = PolyglotBenchmark.open(_tree(from_))
    table = Table(title=f"polyglot subsets ({bench.root})")
    for col in ("subset", "count", "languages"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for subset in SUBSETS:
        tasks = bench.tasks(subset)
        counts: dict[str, int] = {}
        for t in tasks:
            counts[t.language] = counts.get(t.language, 0) + 1
        table.add_row(subset, str(len(tasks)), ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    Console().print(table)


def prepare(name: BenchArg, from_: FromOpt = None, lang: LangOpt = None,
            force: Annotated[bool, typer.Option(help="Prepare again even if ready.")] = False) -> None:
    """Install the shared, read-only test dependencies (npm, crates, jars, Go/C++ caches)."""
    from hgm.benchmarks.polyglot import deps
    from hgm.benchmarks.polyglot.loader import resolve_root

    _polyglot(name)
    root = resolve_root(_tree(from_))
    out = Console(stderr=True)
    for language in _languages(lang):
        with out.status(f"preparing {language} test dependencies ..."):
            done = deps.prepare(root, language, force=force)
        out.print(f"{language}: {'prepared' if done else 'ready'}"
                  + (f" ({deps.deps_dir(language)})" if language in deps.NEEDS_DEPS else " (nothing needed)"))


def validate(
    name: BenchArg,
    subset: Annotated[str, typer.Option(help="Polyglot: small, medium or all. SWE-bench: a subset (`hgm benchmark list swe-bench`) or a file of instance ids.")] = "all",
    lang: LangOpt = None,
    jobs: Annotated[int, typer.Option("--workers", min=1, help="Parallel test runs.")] = 2,
    sandbox: Annotated[str, typer.Option(help="bwrap or none (SWE-bench: docker or bwrap).")] = "bwrap",
    from_: FromOpt = None,
    log_dir: Annotated[Optional[Path], typer.Option("-o", "--output", help="Keep test logs here (default: a temp dir).")] = None,
    timeout: Annotated[float, typer.Option(help="Per test run, seconds.")] = 180.0,
    dataset: DatasetOpt = None,
    tasks: TasksOpt = None,
    base: BaseOpt = None,
) -> None:
    """Run every reference solution (must be solved) and untouched stub (must not be); SWE-bench:
    every gold patch (must be resolved) and unpatched base (must not be)."""
    from hgm.benchmarks.polyglot import PolyglotBenchmark, deps
    from hgm.benchmarks.polyglot.validate import FREE_PASSES, UNSOLVABLE, summarize
    from hgm.benchmarks.polyglot.validate import validate as run_validation
    from hgm.sandbox import get_sandbox

    if name == "swe-bench":
        from hgm.cli_swe_bench import validate as swe_validate

        return swe_validate(dataset, subset, tasks, jobs, sandbox, log_dir, timeout, base)
    _polyglot(name)
    bench = PolyglotBenchmark.open(_tree(from_))
    languages = _languages(lang)
    selected = [t for t in bench.tasks(subset) if t.language in languages]
    if tasks:
        selected = [bench.task(task_id.strip()) for task_id in tasks.split(",") if task_id.strip()]
    box = get_sandbox(sandbox)
    out = Console(stderr=True)
    for language in sorted({t.language for t in selected}):
        if not deps.is_ready(language):
            with out.status(f"preparing {language} test dependencies (once) ..."):
                deps.prepare(bench.root, language)
    logs = log_dir or Path(tempfile.mkdtemp(prefix="hgm-validate-"))
    checks, wall = validate_with_progress(2 * len(selected), lambda done: run_validation(
        selected, sandbox=box, log_dir=logs, timeout_s=timeout, jobs=jobs, on_done=done))
    table = Table(title=f"polyglot validation ({subset}, sandbox {sandbox}, workers {jobs}): wall {wall:.0f} s")
    for col in ("language", "tasks", "refs solved", "stubs unsolved", "free passes", "unexpected",
                "test s (sum)", "slowest"):
        table.add_column(col, justify="left" if col in ("language", "slowest") else "right")
    for r in summarize(checks):
        table.add_row(r.language, str(r.tasks), str(r.references_solved), str(r.stubs_unsolved),
                      str(r.free_passes), f"[red]{r.unexpected}[/]" if r.unexpected else "0",
                      f"{r.test_s:.0f}", f"{r.slowest[1]} {r.slowest[0]:.1f} s")
    result_console().print(table)
    free = sorted(c.task.id for c in checks if c.free_pass)
    result_console().print(f"expected free passes (refactoring stubs that already pass): {', '.join(free) or 'none'}"
                           f" (known: {', '.join(sorted(FREE_PASSES))})")
    for c in checks:
        if c.kind == "reference" and c.task.id in UNSOLVABLE:
            result_console().print(f"known unsolvable: {c.task.id} ({c.status}): {UNSOLVABLE[c.task.id]}")
    exit_on_unexpected(checks, logs)


def doctor(
    clean: Annotated[bool, typer.Option("--clean", help="First remove leftover hgm containers (docker backend).")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Also report this Ray cluster: nodes, slots, what each lacks.")] = None,
) -> None:
    """Check toolchains, sandbox and benchmark dependencies; print the fix for each problem."""
    from hgm.doctor import clean_docker, run_checks

    if clean:
        Console().print(clean_docker())
    findings = run_checks(ray_address)
    table = Table(title="hgm doctor")
    for col in ("check", "ok", "found", "fix"):
        table.add_column(col)
    for f in findings:
        table.add_row(f.area, "[green]yes[/]" if f.ok else "[yellow]no[/]" if f.optional else "[red]NO[/]", f.what, f.fix)
    Console().print(table)
    if not all(f.ok or f.optional for f in findings):
        sys.exit(1)


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    benchmark_app.command("fetch")(fetch)
    benchmark_app.command("list")(list_)
    benchmark_app.command("prepare")(prepare)
    benchmark_app.command("validate")(validate)
    app.command("doctor")(doctor)
