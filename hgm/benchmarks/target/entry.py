"""The target kind's registry entry (hgm/benchmarks/registry.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from hgm.benchmarks.entry import BenchmarkEntry, CommandOptions, no_command
from hgm.errors import UserError

if TYPE_CHECKING:
    from hgm.benchmarks import Benchmark
    from hgm.config import BenchmarkConfig, HGMConfig
    from hgm.doctor import Finding

DESCRIPTION = "the cases of a target (your own program), each run by its entry command and scored by its own scorer"


def _open(config: BenchmarkConfig) -> Benchmark:
    from hgm.benchmarks.target.benchmark import TargetBenchmark

    if config.target is None:
        raise UserError("the target benchmark needs a target: hgm run --target DIR (DIR holds target.yaml)")
    return cast("Benchmark", TargetBenchmark(config.target))  # its tasks are Cases


def _subset_ids(subset: str) -> list[str] | None:
    if subset != "all":
        raise UserError(f"a target's tasks are its cases; use --subset all or --tasks a,b (not {subset!r})")
    return None


def _list(o: CommandOptions) -> None:
    from rich.console import Console

    from hgm.benchmarks.target.spec import load_target

    if o.from_ is None:
        raise UserError("hgm benchmark list target --from DIR: DIR is the target directory (holding target.yaml)")
    spec = load_target(o.from_)
    for case in spec.case_list():
        Console().print(case["id"], soft_wrap=True)


def _check_config(config: HGMConfig) -> None:
    if config.benchmark.target is None:
        raise UserError("the target benchmark needs a target: hgm run --target DIR (DIR holds target.yaml)")


def _doctor(path: Path | None) -> list[Finding]:
    return []


ENTRY = BenchmarkEntry(
    name="target", description=DESCRIPTION, open=_open, subset_ids=_subset_ids,
    fetch=no_command("target", "fetch", "a target is a local directory: hgm run --target DIR"),
    list_subsets=_list,
    prepare=no_command("target", "prepare", "a target brings what it needs in its directory"),
    validate=no_command("target", "validate", "run the target once with hgm run --target DIR --max-task-evals 1"),
    doctor=_doctor, check_config=_check_config,
)
