"""SWE-bench's registry entry (hgm/benchmarks/registry.py): opening, subsets, commands, doctor checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from hgm.benchmarks.entry import BenchmarkEntry, no_command
from hgm.benchmarks.swe_bench import DESCRIPTION, SWEBenchBenchmark, cli
from hgm.benchmarks.swe_bench.dataset import subset_ids
from hgm.errors import UserError

if TYPE_CHECKING:
    from hgm.benchmarks import Benchmark
    from hgm.config import BenchmarkConfig, HGMConfig
    from hgm.doctor import Finding


def check_packages(path: Path | None = None) -> list[Finding]:
    """SWE-bench's optional extra: the official swebench package (v5) and datasets."""
    from hgm.doctor import Finding, installed_version

    fix = "pip install 'hgm[swe-bench]'"
    out = []
    for package, wanted in (("swebench", "5."), ("datasets", "")):
        found = installed_version(package)
        if found is None:
            out.append(Finding(f"swe-bench {package}", False, "not installed", fix, optional=True))
            continue
        ok = found.startswith(wanted)
        out.append(Finding(f"swe-bench {package}", ok, found, "" if ok else f"{fix} (hgm grades with swebench 5.x)",
                           optional=True))
    return out


def _open(config: BenchmarkConfig) -> Benchmark:
    bench = SWEBenchBenchmark.open(config.dataset, config.split, build_base=config.build_base)
    return cast("Benchmark", bench)  # its tasks are SWEBenchTasks


def _check_config(config: HGMConfig) -> None:
    if config.sandbox.backend == "none":
        raise UserError("SWE-bench runs agents and tests in each instance's environment: use --sandbox docker "
                        "or --sandbox bwrap, not none")


ENTRY = BenchmarkEntry(
    name="swe-bench", description=DESCRIPTION, open=_open, subset_ids=subset_ids,
    fetch=cli.fetch, list_subsets=cli.list_subsets,
    prepare=no_command("swe-bench", "prepare", "`hgm benchmark fetch swe-bench` gets the instance images"),
    validate=cli.validate, doctor=check_packages, check_config=_check_config,
)
