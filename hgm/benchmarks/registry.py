"""The benchmarks by name: one explicit dict from a name to its `BenchmarkEntry` (hgm/benchmarks/entry.py).

An entry owns everything about its benchmark that the rest of hgm asks for by name: opening it
from the config, its description for the prompts, its subsets, the `hgm benchmark
fetch|list|prepare|validate` commands, its doctor checks, what `hgm node prepare` does for it and
the run-time checks of a config. Adding a benchmark is one package with an `entry.py` and one line
here; nothing else names it.
"""

from __future__ import annotations

from hgm.benchmarks.entry import BenchmarkEntry
from hgm.benchmarks.polyglot.entry import ENTRY as POLYGLOT
from hgm.benchmarks.swe_bench.entry import ENTRY as SWE_BENCH
from hgm.benchmarks.target.entry import ENTRY as TARGET
from hgm.errors import UserError

BENCHMARKS: dict[str, BenchmarkEntry] = {"polyglot": POLYGLOT, "swe-bench": SWE_BENCH, "target": TARGET}


def entry(name: str) -> BenchmarkEntry:
    """The entry named `name`; an unknown name is a UserError listing the known ones."""
    if name not in BENCHMARKS:
        raise UserError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


__all__ = ["BENCHMARKS", "entry"]
