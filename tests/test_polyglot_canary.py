"""hgm's canary (canary.py) and the static check (tripwire.py), fast: no runner. That a canary
fails with every reference solution and passes under tampering is checked through the real
runners by `hgm benchmark validate` and tests/test_hostile_solutions.py."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from hgm.benchmarks.polyglot import PolyglotBenchmark, testcases
from hgm.benchmarks.polyglot.instrument import instrument
from hgm.benchmarks.polyglot.languages import SPECS
from hgm.benchmarks.polyglot.tripwire import framework_references
from hgm.benchmarks.polyglot.workspace import copy_exercise, reference_changes

LANGUAGES = ("python", "javascript", "java", "go", "rust", "cpp")
NO_CANARY = {"go__counter", "cpp__zebra-puzzle"}  # no tests upstream; every test case has sections


@pytest.fixture(scope="module")
def bench(polyglot_path: Path) -> PolyglotBenchmark:
    return PolyglotBenchmark.open(polyglot_path)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_exercise_gets_a_canary_that_its_runner_sees_as_one_more_test(
    bench, tmp_path: Path, language: str
) -> None:
    tasks = [t for t in bench.tasks() if t.language == language and t.id not in NO_CANARY]
    places: set[int] = set()
    for n, task in enumerate(tasks):
        copy = copy_exercise(task, tmp_path / str(n))
        SPECS[language].unskip(copy, task.test_files)
        inst = instrument(task, copy, random.Random(n))
        canaries = [t for t in inst.expected if t.canary]
        assert len(canaries) == 1, f"{task.id}: no canary"
        canary = canaries[0]
        seen = testcases.expected_tests(replace(task, path=copy))
        assert [t.name for t in seen].count(canary.name) == 1, f"{task.id}: the runner would not see {canary.name}"
        assert len(seen) == len(inst.expected), task.id
        assert (copy / canary.file).read_text() != (task.path / canary.file).read_text()
        if len(seen) > 4 and len(places) < 3:  # where it lands, over seeds, in the first few exercises
            for seed in range(12):
                again = copy_exercise(task, tmp_path / f"{n}-{seed}")
                SPECS[language].unskip(again, task.test_files)
                name = next(t.name for t in instrument(task, again, random.Random(seed)).expected if t.canary)
                places.add([t.name for t in testcases.expected_tests(replace(task, path=again))].index(name))
    assert len(places) >= 3, f"the canary lands at {places} only"


def test_the_canary_changes_from_run_to_run(bench, tmp_path: Path) -> None:
    task = bench.task("python__transpose")
    names = set()
    for n in range(5):
        copy = copy_exercise(task, tmp_path / str(n))
        names |= {t.name for t in instrument(task, copy).expected if t.canary}  # the default: system randomness
    assert len(names) == 5


def test_no_reference_solution_names_the_test_framework(bench) -> None:
    named = {t.id: hits for t in bench.tasks() if (hits := framework_references(t.language, reference_changes(t)))}
    assert set(named) <= {"go__counter"}, named  # go__counter's exercise is writing a test suite


@pytest.mark.parametrize(
    ("language", "source", "found"),
    [
        ("python", "import unittest\n", "unittest"),
        ("python", "x = __import__('_pytest.runner')\n", "'_pytest.runner'"),
        ("python", "# unittest would be nice here\ns = 'a unittest of sorts'\n", None),
        ("javascript", "expect.extend({});\n", "expect"),
        ("javascript", "const r = /expect/.test(s); // jest\n", None),
        ("javascript", "const x = { asymmetricMatch: () => true };\n", "asymmetricMatch"),
        ("java", 'Class.forName("org.junit.jupiter.api.Assertions");\n', "org.junit"),
        ("java", "// uses junit in tests only\nint junitish = 1;\n", None),
        ("go", 'import "testing"\n', '"testing"'),
        ("rust", "macro_rules! assert_eq { () => {} }\n", "macro_rules! assert_eq"),
        ("cpp", "#undef REQUIRE\n#define REQUIRE(x)\n", "REQUIRE"),
        ("cpp", "/* REQUIRE */ int required = 1;\n", None),
    ],
)
def test_the_static_check_reads_code_and_strings_not_comments(language: str, source: str, found: str | None) -> None:
    hits = framework_references(language, {"solution": source.encode()})
    assert (hits[0].split(": ", 1)[1] if hits else None) == found, hits
