"""Polyglot's registry entry (hgm/benchmarks/registry.py): opening, subsets, commands, doctor checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from hgm.benchmarks.entry import BenchmarkEntry
from hgm.benchmarks.polyglot import DESCRIPTION, PolyglotBenchmark, cli
from hgm.benchmarks.polyglot.loader import subset_ids

if TYPE_CHECKING:
    from hgm.benchmarks import Benchmark
    from hgm.config import BenchmarkConfig
    from hgm.doctor import Finding


def check_toolchains() -> list[Finding]:
    from hgm.benchmarks.polyglot import deps
    from hgm.benchmarks.polyglot.languages import SPECS
    from hgm.doctor import Finding

    out = []
    for lang, spec in SPECS.items():
        tc = spec.toolchain()
        out.append(Finding(f"polyglot {lang} toolchain", tc.ok, tc.version or "missing", tc.fix))
        if lang in deps.NEEDS_DEPS:
            ready = deps.is_ready(lang)
            out.append(Finding(
                f"polyglot {lang} test deps", ready,
                f"prepared in {deps.deps_dir(lang)}" if ready else "not prepared",
                "" if ready else f"hgm benchmark prepare polyglot --lang {lang}",
            ))
    return out


def check_tree(path: Path | None = None) -> list[Finding]:
    """The benchmark tree at `path`, else the config's benchmark.path, else the fetched copy."""
    from hgm.benchmarks.polyglot.loader import default_path, resolve_root
    from hgm.config import load_config
    from hgm.doctor import Finding
    from hgm.errors import UserError

    configured = path or load_config().benchmark.path
    try:
        root = resolve_root(configured)
    except UserError:
        where = f"no tree at benchmark.path={configured}" if configured else f"not fetched to {default_path()}"
        return [Finding("polyglot benchmark", False, where,
                        "hgm benchmark fetch polyglot (or pass --from PATH to commands, or set benchmark.path)")]
    return [Finding("polyglot benchmark", True, str(root))]


def prepare_node(benchmark_path: Path | None) -> str:
    from hgm.benchmarks.polyglot import deps
    from hgm.benchmarks.polyglot.loader import LANGUAGES, resolve_root

    root = resolve_root(benchmark_path)  # UserError with the fix (hgm benchmark fetch / --from)
    done = [lang for lang in LANGUAGES if deps.prepare(root, lang)]
    return f"polyglot test dependencies ready ({', '.join(done) or 'all were'} prepared now) for {root}"


def _open(config: BenchmarkConfig) -> Benchmark:
    return cast("Benchmark", PolyglotBenchmark.open(config.path))  # its tasks are PolyglotTasks


ENTRY = BenchmarkEntry(
    name="polyglot", description=DESCRIPTION, open=_open, subset_ids=subset_ids,
    fetch=cli.fetch, list_subsets=cli.list_subsets, prepare=cli.prepare, validate=cli.validate,
    doctor=lambda path: [*check_tree(path), *check_toolchains()], prepare_node=prepare_node,
)
