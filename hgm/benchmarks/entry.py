"""What a benchmark is to the rest of hgm: a `BenchmarkEntry` (hgm/benchmarks/registry.py holds
them by name)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hgm.errors import UserError

if TYPE_CHECKING:
    from hgm.benchmarks import Benchmark
    from hgm.config import BenchmarkConfig, HGMConfig
    from hgm.doctor import Finding


@dataclass(frozen=True)
class CommandOptions:
    """What an `hgm benchmark` command was given; each benchmark uses the options it has (its
    commands' help says which) and refuses those that make no sense for it."""

    output: Path | None = None
    from_: Path | None = None
    dataset: str | None = None
    subset: str | None = None
    tasks: str | None = None
    sandbox: str | None = None
    base: str | None = None
    lang: list[str] | None = None
    workers: int = 2
    timeout: float = 180.0
    force: bool = False


Command = Callable[[CommandOptions], None]


def no_command(name: str, command: str, fix: str) -> Command:
    def refuse(options: CommandOptions) -> None:
        raise UserError(f"{name} has no `hgm benchmark {command}`: {fix}")

    return refuse


@dataclass(frozen=True)
class BenchmarkEntry:
    name: str
    description: str
    """What the tasks are and what decides them: completes "the agent's tasks are ..." in the prompts."""
    open: Callable[[BenchmarkConfig], Benchmark]
    """The benchmark the config names (UserError with the fix when it cannot be opened)."""
    subset_ids: Callable[[str], list[str] | None]
    """A subset's task ids (None: all tasks); UserError for a subset the benchmark does not have,
    without loading any task."""
    fetch: Command
    list_subsets: Command
    prepare: Command
    validate: Command
    doctor: Callable[[Path | None], list[Finding]]
    """`hgm doctor`'s findings for this benchmark (given benchmark.path)."""
    prepare_node: Callable[[Path | None], str] | None = None
    """`hgm node prepare`'s step for this benchmark (None: nothing to prepare on a node)."""
    check_config: Callable[[HGMConfig], None] | None = None
    """UserError for a config this benchmark cannot run with (e.g. a sandbox it cannot use)."""
