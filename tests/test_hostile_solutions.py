"""Hostile solutions, per language, scored with real toolchains in bwrap: none is scored solved.

Each solution in tests/hostile/ is a correct solution of one task plus one attack on the verdict,
chosen by the constant it is written with (HGM_ATTACK). The attacks: print the runner's success
summary and exit 0 at load time (Python module top level, JS module top level, Go init(), Java
static initialiser, Rust ELF init array, C++ global constructor and init array); write forged
summary and report lines to every inherited file descriptor, then exit 0; overwrite the report
file with a forged one; delete it (and pass every test); kill the runner's parent; sleep past the
timeout; skip (python, java) or deselect (go) the tests. Without an attack the same file is solved.

Attacks from inside the runner's process (IN_PROCESS): the test framework's assertions replaced
(unittest's assert* methods, jest's matchers through expect.extend), its globals proxied (expect),
a value that equals anything returned instead of an answer (Python `__eq__`, jest
`asymmetricMatch`), the collector patched to run empty tests, a pytest plugin rewriting reports,
hgm's own reporter called with passes for every test in the test file, Object.is patched, and the harness's canary
special-cased by name or by position; Java: hgm's
JUnit reporter called by reflection with a pass for every @Test in the file; Go: the reporter's
key and sequence read through //go:linkname and a signed pass written for every test function;
Rust: the run's key read from stdin by an ELF init array before hgm's guard, and a signed pass
written for every #[test] fn in the files; C++: Catch's REQUIRE redefined as a no-op by the
solution's header. Each goes with a
wrong answer, so a pass would be forged; each is written so that the static check does not see
the framework's name (the run-time defences are what is tested); `names_framework` is the static
check's own case: a correct solution that names the framework.

An attack that ends in exit 0 would have been `solved` by an exit-code-and-console verdict; the
tests check that it ran ("hostile:" in the log) and that it is failed with the tampering flag.
Only with bwrap: killing the parent outside a pid namespace would hit the test process itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hgm.benchmarks.polyglot import PolyglotBenchmark
from hgm.benchmarks.polyglot.languages import SPECS
from hgm.benchmarks.polyglot.scoring import run_tests
from hgm.domain import EvalStatus, VerdictFlag
from hgm.sandbox import get_sandbox

from toolchains import require_language

pytestmark = pytest.mark.slow

HOSTILE = Path(__file__).parent / "hostile"
SOLUTIONS = {  # task: {solution file: file in tests/hostile}
    "python__transpose": {"transpose.py": "transpose.py"},
    "javascript__sum-of-multiples": {"sum-of-multiples.js": "sum-of-multiples.js"},
    "go__octal": {"octal.go": "octal.go"},
    "rust__accumulate": {"src/lib.rs": "accumulate.rs"},
    "java__resistor-color-trio": {"src/main/java/ResistorColorTrio.java": "ResistorColorTrio.java"},
    "cpp__diamond": {"diamond.cpp": "diamond.cpp", "diamond.h": "diamond.h"},
}
COMMON = ("summary_at_load", "lines_to_every_fd", "forged_report", "deleted_report", "killed_parent",
          "slept_past_timeout")
EXTRA = {"python": ("skipped_tests",), "go": ("deselected_tests",), "java": ("skipped_tests",),
         "cpp": ("summary_in_init_array",)}
IN_PROCESS = {
    "python": ("assertions_replaced", "always_equal", "collector_patched", "report_hook", "reporter_called",
               "canary_by_name", "canary_by_position", "names_framework"),
    "javascript": ("assertions_replaced", "expect_proxied", "always_equal", "collector_patched", "builtin_patched",
                   "canary_by_name", "canary_by_position", "names_framework"),
    "java": ("reporter_called",),
    "go": ("reporter_called",),
    "rust": ("key_stolen",),
    "cpp": ("assertions_replaced",),
}
APPENDED = {  # (task, attack): code appended to a solution file (it names the framework: the static check
    # sees it too; the test checks that the canary caught it as well)
    ("go__octal", "reporter_called"): (
        "octal.go",
        "\n//go:linkname hostileKey octal/hgmverdict.key\nvar hostileKey []byte\n\n"
        "//go:linkname hostileSeq octal/hgmverdict.seq\nvar hostileSeq int\n\n"
        'func init() {\n\tsay("hostile: the reporter\'s key through go:linkname\\n")\n'
        "\tforgeReport(hostileKey, hostileSeq)\n}\n",
    ),
    ("cpp__diamond", "assertions_replaced"): (
        "diamond.h",
        '\n#include "test/catch.hpp"\n#undef REQUIRE\n'
        "#define REQUIRE(...) (void)0\n#include <cstdio>\n"
        'static const int hostile_said = std::puts("hostile: REQUIRE redefined");\n',
    ),
}
NAMES_FRAMEWORK = {  # appended to the correct solution: names the framework, says it ran
    "python": '\nimport unittest as _unused\nsay("hostile: names the test framework\\n")\n',
    "javascript": "\nsay(`hostile: names the test framework ${typeof expect}\\n`);\n",
}
CASES = [(task, attack) for task in SOLUTIONS for attack in COMMON + EXTRA.get(task.split("__")[0], ())]
IN_PROCESS_CASES = [(task, attack) for task in SOLUTIONS for attack in IN_PROCESS.get(task.split("__")[0], ())]
SLEEP_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def bench(polyglot_path: Path) -> PolyglotBenchmark:
    return PolyglotBenchmark.open(polyglot_path)


@pytest.fixture(scope="module")
def bwrap():
    return get_sandbox("bwrap")


def _score(bench, bwrap, tmp_path: Path, task_id: str, attack: str):
    task = bench.task(task_id)
    require_language(task.language)
    changes = {target: (HOSTILE / name).read_text().replace("HGM_ATTACK", attack).encode()
               for target, name in SOLUTIONS[task_id].items()}
    if attack == "names_framework":
        first = next(iter(SOLUTIONS[task_id]))
        changes[first] += NAMES_FRAMEWORK[task.language].encode()
    if (task_id, attack) in APPENDED:
        target, code = APPENDED[task_id, attack]
        changes[target] += code.encode()
    timeout = SLEEP_TIMEOUT_S if attack == "slept_past_timeout" else 300
    return run_tests(task, changes, sandbox=bwrap, log_dir=tmp_path, timeout_s=timeout)


@pytest.mark.parametrize("task_id", list(SOLUTIONS))
def test_without_an_attack_the_hostile_file_is_a_correct_solution(bench, bwrap, tmp_path: Path, task_id: str) -> None:
    score = _score(bench, bwrap, tmp_path, task_id, "none")
    assert score.status is EvalStatus.SOLVED and score.flag is None, score.output_path.read_text()[-3000:]


@pytest.mark.parametrize(("task_id", "attack"), CASES)
def test_hostile_solution_is_not_solved(bench, bwrap, tmp_path: Path, task_id: str, attack: str) -> None:
    score = _score(bench, bwrap, tmp_path, task_id, attack)
    log = score.output_path.read_text()
    assert "hostile:" in log, f"the attack did not run:\n{log[-3000:]}"
    assert score.status is EvalStatus.FAILED, f"{attack} was scored {score.status}: {score.detail}"
    if attack == "slept_past_timeout":
        assert score.flag is None and score.detail.startswith("timed out"), score.detail
    elif (task_id, attack) == ("java__resistor-color-trio", "skipped_tests") and score.flag is None:
        # JUnit reports an aborted test (a failed assumption) as not successful: hgm's listener says
        # failed, and with the canary's failure beside it that reads as a genuine failure
        assert re.fullmatch(r"1 of 10 tests failed: \w+", score.detail), score.detail
    elif attack != "killed_parent":  # a killed parent may end the sandbox (non-zero exit, plain failure)
        # the attack looked like a pass: exit 0, or the exit of a run where only hgm's canary failed
        looks_passed = {0, SPECS[task_id.split("__")[0]].failed_exit}
        assert int(log.split(": exit ", 1)[1].split(",", 1)[0]) in looks_passed, log[:300]
        assert score.flag is VerdictFlag.SUSPECTED_TAMPERING, score.detail
        assert re.match(r"suspected tampering: exit \d+ but ", score.detail), score.detail


@pytest.mark.parametrize(("task_id", "attack"), IN_PROCESS_CASES)
def test_in_process_tampering_is_not_solved(bench, bwrap, tmp_path: Path, task_id: str, attack: str) -> None:
    score = _score(bench, bwrap, tmp_path, task_id, attack)
    log = score.output_path.read_text()
    assert "hostile:" in log, f"the attack did not run:\n{log[-3000:]}"
    assert score.status is EvalStatus.FAILED, f"{attack} was scored {score.status}: {score.detail}"
    assert score.flag is VerdictFlag.SUSPECTED_TAMPERING, score.detail
    assert score.detail.startswith("suspected tampering: "), score.detail
    if (
        attack in ("always_equal", "reporter_called", "key_stolen") or (task_id, attack) in APPENDED
    ):  # the canary saw it
        assert "hgm's canary" in score.detail, score.detail
    if attack == "names_framework":
        assert "names the test framework" in score.detail, score.detail
