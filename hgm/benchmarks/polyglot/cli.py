"""`hgm benchmark fetch|list|prepare|validate polyglot` (the registry's entry points to these)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hgm.benchmarks.entry import CommandOptions
from hgm.errors import UserError
from hgm.markup import literal


def _tree(from_: Path | None) -> Path | None:
    """--from, else the config's benchmark.path (None: the fetched copy)."""
    if from_ is not None:
        return from_
    from hgm.config import load_config

    return load_config().benchmark.path


def _languages(langs: list[str] | None) -> list[str]:
    from hgm.benchmarks.polyglot.loader import LANGUAGES

    for lang in langs or []:
        if lang not in LANGUAGES:
            raise UserError(f"unknown language {lang!r}; valid: {', '.join(LANGUAGES)}")
    return list(langs or LANGUAGES)


def fetch(o: CommandOptions) -> None:
    """Clone the benchmark at its pinned commit (needs github.com), or copy a local tree (--from)."""
    from hgm.benchmarks.polyglot.loader import UPSTREAM_COMMIT, install_copy
    from hgm.benchmarks.polyglot.loader import fetch as do_fetch

    if o.from_ is not None:
        with Console(stderr=True).status(f"copying {literal(o.from_)}"):
            path = install_copy(o.from_, o.output)
        where = "commands use it without --from" if o.output is None else f"pass --from {path} to commands"
        Console().print(literal(f"polyglot copied from {o.from_} to {path}; {where}"))
        return
    with Console(stderr=True).status(f"cloning the Polyglot benchmark at {UPSTREAM_COMMIT[:12]}"):
        path = do_fetch(o.output)
    Console().print(literal(f"polyglot at {UPSTREAM_COMMIT[:12]} in {path}"))


def list_subsets(o: CommandOptions) -> None:
    """The subsets with their task counts per language."""
    from hgm.benchmarks.polyglot import SUBSETS, PolyglotBenchmark

    bench = PolyglotBenchmark.open(_tree(o.from_))
    table = Table(title=literal(f"polyglot subsets ({bench.root})"))
    for col in ("subset", "count", "languages"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for subset in SUBSETS:
        tasks = bench.tasks(subset)
        counts: dict[str, int] = {}
        for t in tasks:
            counts[t.language] = counts.get(t.language, 0) + 1
        table.add_row(subset, str(len(tasks)), ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    Console().print(table)


def prepare(o: CommandOptions) -> None:
    """Install the shared, read-only test dependencies (npm, crates, jars, Go/C++ caches)."""
    from hgm.benchmarks.polyglot import deps
    from hgm.benchmarks.polyglot.loader import resolve_root

    root = resolve_root(_tree(o.from_))
    out = Console(stderr=True)
    for language in _languages(o.lang):
        with out.status(f"preparing {language} test dependencies ..."):
            done = deps.prepare(root, language, force=o.force)
        out.print(f"{language}: {'prepared' if done else 'ready'}"
                  + (f" ({literal(deps.deps_dir(language))})" if language in deps.NEEDS_DEPS else " (nothing needed)"))


def validate(o: CommandOptions) -> None:
    """Every reference solution must be solved and every untouched stub not."""
    from hgm.benchmarks.polyglot import PolyglotBenchmark, deps
    from hgm.benchmarks.polyglot.validate import FREE_PASSES, UNSOLVABLE, summarize
    from hgm.benchmarks.polyglot.validate import validate as run_validation
    from hgm.cli_benchmark import exit_on_unexpected, result_console, validate_with_progress
    from hgm.sandbox import get_sandbox

    subset, sandbox = o.subset or "all", o.sandbox or "bwrap"
    bench = PolyglotBenchmark.open(_tree(o.from_))
    languages = _languages(o.lang)
    selected = [t for t in bench.tasks(subset) if t.language in languages]
    if o.tasks:
        selected = [bench.task(task_id.strip()) for task_id in o.tasks.split(",") if task_id.strip()]
    box = get_sandbox(sandbox)
    out = Console(stderr=True)
    for language in sorted({t.language for t in selected}):
        if not deps.is_ready(language):
            with out.status(f"preparing {language} test dependencies (once) ..."):
                deps.prepare(bench.root, language)
    logs = o.output or Path(tempfile.mkdtemp(prefix="hgm-validate-"))
    checks, wall = validate_with_progress(2 * len(selected), lambda done: run_validation(
        selected, sandbox=box, log_dir=logs, timeout_s=o.timeout, jobs=o.workers, on_done=done))
    table = Table(title=f"polyglot validation ({subset}, sandbox {sandbox}, workers {o.workers}): wall {wall:.0f} s")
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
            result_console().print(f"known unsolvable: {c.task.id} ({c.status}): {literal(UNSOLVABLE[c.task.id])}")
    exit_on_unexpected(checks, logs)
