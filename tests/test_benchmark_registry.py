"""The benchmark registry: one entry per name, every name-dependent thing found through it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hgm.benchmarks import check_subset, describe
from hgm.benchmarks.registry import BENCHMARKS, entry
from hgm.config import BenchmarkConfig
from hgm.errors import UserError


def hgm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hgm.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_each_entry_is_filed_under_its_own_name() -> None:
    assert sorted(BENCHMARKS) == ["polyglot", "swe-bench", "target"]
    for name, bench in BENCHMARKS.items():
        assert bench.name == name
        assert describe(name) == bench.description and bench.description


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UserError, match="known: polyglot, swe-bench"):
        entry("polyglott")
    with pytest.raises(ValueError, match="unknown benchmark 'x'"):
        BenchmarkConfig(name="x")
    result = hgm("run", "--benchmark", "polyglott")
    assert result.returncode == 2 and "known: polyglot, swe-bench" in result.stderr


def test_subsets_are_checked_by_the_entry_without_loading_tasks() -> None:
    check_subset("polyglot", "small")
    check_subset("swe-bench", "verified-10")
    with pytest.raises(UserError):
        check_subset("swe-bench", "verified-11")
    with pytest.raises(UserError):
        check_subset("polyglot", "smal")


def test_a_command_a_benchmark_lacks_says_what_to_do() -> None:
    result = hgm("benchmark", "prepare", "swe-bench")
    assert result.returncode == 2 and "hgm benchmark fetch swe-bench" in result.stderr


def test_swe_bench_refuses_the_none_sandbox_before_anything_runs() -> None:
    result = hgm("run", "--swe-bench", "--sandbox", "none")
    assert result.returncode == 2 and "use --sandbox docker" in result.stderr
