"""The tamper-evident verdict, fast: the signed report channel, the cross-checks of `verdict`, the
static test-file parsers and the console summaries. Real runners and hostile solutions:
test_hostile_solutions.py; every reference through the real runners: `hgm benchmark validate`."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from hgm.benchmarks.polyglot import PolyglotBenchmark, languages, testcases
from hgm.benchmarks.polyglot.instrument import Instrumented, rust_build_code
from hgm.benchmarks.polyglot.report import Report, new_key, read_report, sign
from hgm.benchmarks.polyglot.scoring import verdict
from hgm.benchmarks.polyglot.testcases import ExpectedTest
from hgm.domain import EvalStatus, VerdictFlag
from hgm.sandbox.base import ExecResult

KEY = new_key()


def signed(*records: str, key: str = KEY) -> str:
    lines = []
    for seq, record in enumerate(records):
        body = f"{seq} {record}"
        lines.append(f"{body} {sign(key, body)}\n")
    return "".join(lines)


def test_new_keys_are_fresh_and_long() -> None:
    assert len(KEY) == 64 and new_key() != new_key()


def test_a_signed_report_reads_back(tmp_path: Path) -> None:
    (tmp_path / "report").write_text(signed("start pytest", f"test {'a::ü'.encode().hex()} passed",
                                            f"test {b'b'.hex()} failed", "end fail"))
    report = read_report(tmp_path / "report", KEY)
    assert report.problem is None and report.tests == [("a::ü", "passed"), ("b", "failed")] and report.ends == ["fail"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (signed("start x", "end ok", key=new_key()), "line 1 is not signed by the run's key"),
        (signed("start x") + "1 end ok " + "0" * 64 + "\n", "line 2 is not signed"),
        (signed("start x") + signed("start x", "end ok")[1:], "line 2 is not signed"),  # a line taken apart
        ("\n".join(signed("start x", "test 61 passed", "end ok").split("\n")[::2]) + "\n", "missing, repeated or "
                                                                                           "reordered"),
        (signed("test 61 passed"), "starts with one start record"),
        (signed("start x", "end ok", "test 61 passed"), "a record after the end of run"),
        (signed("start x", "end ok")[:-1], "the last line is cut off"),
        ("", "is empty"),
        (signed("start x", "boom 1"), "unknown record 'boom'"),
    ],
)
def test_forged_or_damaged_reports_are_named(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "report").write_text(content)
    assert problem in (read_report(tmp_path / "report", KEY).problem or "")


def test_a_missing_report_is_named(tmp_path: Path) -> None:
    assert "no report file report" in (read_report(tmp_path / "report", KEY).problem or "")


def test_a_report_replaced_by_a_fifo_or_a_symlink_is_not_read(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "report")  # opening it for reading would block the harness
    assert "not a regular file" in (read_report(tmp_path / "report", KEY).problem or "")
    (tmp_path / "report").unlink()
    (tmp_path / "report").symlink_to("/etc/hostname")
    assert "cannot be read" in (read_report(tmp_path / "report", KEY).problem or "")


def test_several_report_files_add_up(tmp_path: Path) -> None:
    (tmp_path / "a").write_text(signed("start libtest", "test 61 returned"))
    (tmp_path / "b").write_text(signed("start libtest", "test 62 panicked"))
    report = read_report(tmp_path / "b", KEY, read_report(tmp_path / "a", KEY))
    assert report.tests == [("a", "returned"), ("b", "panicked")] and report.problem is None


# ---- verdict ---------------------------------------------------------------------------------

INST = Instrumented((ExpectedTest("t.py::A::test_a"), ExpectedTest("t.py::A::test_b")), ())
PASSED = "2 passed in 0.01s\n"


def run(rc: int = 0, out: str = PASSED, **kw: object) -> ExecResult:
    return ExecResult(rc, out, "", duration_s=1.0, **kw)  # type: ignore[arg-type]


def rep(*tests: tuple[str, str], ends: tuple[str, ...] = ("ok",), problem: str | None = None) -> Report:
    return Report(list(tests), list(ends), problem)


A, B = "t.py::A::test_a", "t.py::A::test_b"


@pytest.fixture
def task(polyglot_path: Path):
    return PolyglotBenchmark.open(polyglot_path).task("python__beer-song")


def test_complete_authentic_report_is_solved(task) -> None:
    assert verdict(task, run(), INST, rep((A, "passed"), (B, "passed"))) == (EvalStatus.SOLVED, "2 tests passed", None)


@pytest.mark.parametrize(
    ("report", "out", "reason"),
    [
        (rep(problem="report line 2 is not signed by the run's key"), PASSED, "report line 2 is not signed"),
        (rep((A, "passed"), (B, "passed"), ends=()), PASSED, "the runner never reached its end of run"),
        (rep((A, "passed"), (B, "passed"), ends=("fail",)), PASSED, "end-of-run record says tests failed"),
        (rep((A, "passed")), "1 passed in 0.01s\n", "1 of 2 tests never reported: test_b"),
        (rep((A, "passed"), (B, "skipped")), "1 passed, 1 skipped in 0.01s\n", "tests reported as not passed: test_b"),
        (rep((A, "passed"), (B, "passed"), (B, "passed")), "3 passed in 0.01s\n", "reported more than once: test_b"),
        (rep((A, "passed"), (B, "passed"), ("t.py::A::test_extra", "failed")), "2 passed, 1 failed in 0.1s\n",
         "tests reported as not passed: test_extra"),
        (rep((A, "passed"), (B, "passed")), "", "the console summary (no summary) disagrees"),
        (rep((A, "passed"), (B, "passed")), "12 passed in 0.01s\n",
         "the console summary (12 passed, 0 failed) disagrees with the report (2 passed, 0 failed)"),
    ],
)
def test_exit_0_without_a_trustworthy_report_is_flagged(task, report: Report, out: str, reason: str) -> None:
    status, detail, flag = verdict(task, run(out=out), INST, report)
    assert status is EvalStatus.FAILED and flag is VerdictFlag.SUSPECTED_TAMPERING
    assert detail.startswith("suspected tampering: exit 0 but ") and reason in detail, detail


def test_extra_passing_tests_and_truncated_output_are_fine(task) -> None:
    report = rep((A, "passed"), (B, "passed"), ("t.py::A::test_more", "passed"))
    assert verdict(task, run(out="3 passed in 0.1s\n"), INST, report)[0] is EvalStatus.SOLVED
    truncated = run(out="[the summary was cut off]", output_truncated=True)
    assert verdict(task, truncated, INST, rep((A, "passed"), (B, "passed")))[0] is EvalStatus.SOLVED


def test_genuine_failures_timeouts_and_no_tests_are_plain_failures(task) -> None:
    failing = verdict(
        task, run(1, "1 passed, 1 failed in 0.1s\n"), INST, rep((A, "passed"), (B, "failed"), ends=("fail",))
    )
    assert failing == (EvalStatus.FAILED, "1 of 2 tests failed: test_b", None)
    crashed = verdict(task, run(2, "ImportError: no module\n"), INST, rep(ends=()))
    assert crashed == (EvalStatus.FAILED, "exit 2: ImportError: no module", None)
    forged_but_failed = verdict(task, run(1), INST, rep(problem="report line 1 is not signed"))
    assert forged_but_failed[0] is EvalStatus.FAILED and forged_but_failed[2] is None
    timed_out = verdict(task, run(137, timed_out=True), INST, rep())
    assert timed_out == (EvalStatus.FAILED, "timed out after 1 s", None)
    assert verdict(task, run(), replace(INST, expected=()), rep())[1] == "the benchmark's test files define no tests"


def test_rust_outcomes_should_panic_and_optional_tests(polyglot_path: Path) -> None:
    task = PolyglotBenchmark.open(polyglot_path).task("rust__accumulate")
    rust = Instrumented(
        (
            ExpectedTest("a", "returned"),
            ExpectedTest("b", "panicked"),
            ExpectedTest("io::c", "returned", optional=True),
        ),
        (),
        ("report-x",),
        ends=False,
    )
    out = "test result: ok. 2 passed; 0 failed; 0 ignored\n"
    assert verdict(task, run(out=out), rust, rep(("a", "returned"), ("b", "panicked"), ends=()))[0] is EvalStatus.SOLVED
    status, detail, flag = verdict(task, run(out=out), rust, rep(("a", "returned"), ("b", "returned"), ends=()))
    assert flag is VerdictFlag.SUSPECTED_TAMPERING and "not passed: b" in detail
    with_c = rep(("a", "returned"), ("b", "panicked"), ("io::c", "panicked"), ends=())
    assert (
        verdict(task, run(out=out.replace("2 passed", "3 passed")), rust, with_c)[2] is VerdictFlag.SUSPECTED_TAMPERING
    )


# ---- parsers ---------------------------------------------------------------------------------


def test_rust_tests_with_modules_should_panic_raw_strings_and_features() -> None:
    text = '''
use x::*;
const S: &str = r#"mod fake { #[test] fn no() {} }"#;
#[test]
fn top() { let c = '{'; }
mod outer {
    /// doc with #[test] fn no()
    #[test]
    #[ignore]
    #[should_panic(expected = "boom")]
    fn panics<'a>() -> () { }
    #[cfg(feature = "io")]
    mod io {
        #[test]
        fn gated() {}
    }
}
#[test]
#[cfg(feature = "big")]
fn big() {}
'''
    found = testcases.rust_file_tests(text, {"big"})
    assert [(n, p, off) for n, p, _, off in found] == [
        ("top", False, False), ("outer::panics", True, False), ("outer::io::gated", False, True), ("big", False, False)]
    assert all(text[at - 1] == "{" for _, _, at, _ in found)
    assert testcases.rust_default_features('[features]\ndefault = ["a"]\na = ["b"]\nb = []\nc = []\n') == {"a", "b"}


def test_rust_build_code_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "x"\nversion = "0.1.0"\n')
    assert rust_build_code(tmp_path) == ""
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "x"\nbuild = "src/build.rs"\n')
    assert "build script" in rust_build_code(tmp_path)
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "x"\n[lib]\nproc-macro = true\n')
    assert "proc-macro" in rust_build_code(tmp_path)


def _task(tmp_path: Path, language: str, files: dict[str, str]):
    from hgm.benchmarks.polyglot.loader import PolyglotTask

    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return PolyglotTask(f"{language}__x", language, "x", tmp_path, (), tuple(files), ())


def test_javascript_titles_nest_and_survive_regexes_and_escapes(tmp_path: Path) -> None:
    spec = r'''
describe('Outer', () => {
  const re = /['"(]/g;  // test('not a test', ...)
  test('it\'s "one"', () => { expect(re.test('x')).toBe(false); });
  describe("Inner", () => {
    xtest(`two`, () => {});
    it.skip('three', () => {});
  });
  test('four', () => { const a = 4 / 2; });
});
test('top', () => {});
'''
    names = [t.name for t in testcases.javascript_tests(_task(tmp_path, "javascript", {"x.spec.js": spec}))]
    assert names == ["Outer > it's \"one\"", "Outer > Inner > two", "Outer > Inner > three", "Outer > four", "top"]


def test_go_tests_respect_build_constraints(tmp_path: Path) -> None:
    task = _task(tmp_path, "go", {
        "a_test.go": "package x\n\nfunc TestA(t *testing.T) {\n}\nfunc TestB(tt *testing.T) { // note\n}\n"
                     "func helper(t *testing.T) {}\nfunc BenchmarkA(b *testing.B) {}\n",
        "bonus_test.go": "//go:build bonus\n\npackage x\n\nfunc TestBonus(t *testing.T) {}\n",
        "step_test.go": "//go:build step1 || (!step2 && !step3)\n\npackage x\n\nfunc TestStep(t *testing.T) {}\n",
    })
    tests = testcases.go_tests(task)
    assert [t.name for t in tests] == ["TestA", "TestB", "TestStep"]
    text = (tmp_path / "a_test.go").read_text()
    header = re.search(r"func TestB\((\w+) \*testing\.T\)\s*\{", text)
    assert header is not None and header.end() == tests[1].body_at and header.group(1) == "tt"


def test_cpp_java_python_tests(tmp_path: Path) -> None:
    cpp = _task(
        tmp_path / "c",
        "cpp",
        {
            "x_test.cpp": '#include "x.h"\nTEST_CASE("one", "[t]") {}\n'
            '#if defined(EXERCISM_RUN_ALL_TESTS)\nTEST_CASE(\n  "two \\"2\\" "\n  "joined") {}\n'
            '#endif\n#if defined(EXERCISM_INCLUDE_BENCHMARK)\nTEST_CASE("bench") {}\n#endif\n'
            '// TEST_CASE("comment")\n'
        },
    )
    assert [t.name for t in testcases.cpp_tests(cpp)] == ["one", 'two "2" joined']
    java = _task(tmp_path / "j", "java", {"src/test/java/XTest.java": (
        'class XTest {\n  @Test\n  @Disabled("Remove to run (test)")\n  public void a() {}\n'
        '  // @Test void commented() {}\n  @Test void b() throws Exception {}\n  void helper() {}\n}\n')})
    assert [t.name for t in testcases.java_tests(java)] == ["XTest#a", "XTest#b"]
    py = _task(
        tmp_path / "p",
        "python",
        {
            "x_test.py": (
                "import unittest\nclass XTest(unittest.TestCase):\n    def test_a(self): pass\n    def helper(self): "
                "pass\n"
                "class TestPlain:\n    def test_b(self): pass\nclass Helper:\n    def test_no(self): pass\ndef "
                "test_c(): pass\n"
            )
        },
    )
    assert [t.name for t in testcases.python_tests(py)] == ["x_test.py::XTest::test_a", "x_test.py::TestPlain::test_b",
                                                            "x_test.py::test_c"]


@pytest.mark.parametrize(
    ("language", "output", "counts"),
    [
        ("python", "..\n===== 2 passed, 1 failed in 0.05s =====\n", (2, 1)),
        ("python", "\nno tests ran in 0.01s\n", None),
        ("javascript", "Tests:       1 failed, 12 passed, 13 total\n", (12, 1)),
        ("javascript", "No tests found, exiting with code 1\n", None),
        ("go", "=== RUN   TestA\n--- PASS: TestA (0.00s)\n    --- PASS: TestA/x (0.00s)\n--- FAIL: TestB "
               "(0.00s)\nFAIL\n", (1, 1)),
        ("go", "testing: warning: no tests to run\nPASS\n", None),
        ("rust", "test result: ok. 3 passed; 0 failed; 0 ignored\n"
                 "test result: FAILED. 3 passed; 2 failed; 0 ignored\n", (6, 2)),
        ("java", "[        12 tests successful      ]\n[         1 tests failed          ]\n", (12, 1)),
        ("cpp", "All tests passed (25 assertions in 7 test cases)\n", (7, 0)),
        ("cpp", "test cases: 7 | 6 passed | 1 failed\n", (6, 1)),
    ],
)
def test_console_summaries(language: str, output: str, counts: tuple[int, int] | None) -> None:
    assert languages.SPECS[language].console(output) == counts


# ---- hgm's canary and the reporters' tampering records ---------------------------------------

C = "t.py::A::test_b_a"
WITH_CANARY = Instrumented((*INST.expected, ExpectedTest(C, "failed", canary=True)), ())
CANARY_FAILED = "1 failed, 2 passed in 0.01s\n"


def test_a_run_whose_only_failure_is_the_canary_is_solved(task) -> None:
    report = rep((A, "passed"), (C, "failed"), (B, "passed"), ends=("fail",))
    assert verdict(task, run(1, CANARY_FAILED), WITH_CANARY, report) == (EvalStatus.SOLVED, "2 tests passed", None)


@pytest.mark.parametrize(
    ("rc", "report", "out", "reason"),
    [
        (0, rep((A, "passed"), (C, "passed"), (B, "passed")), "3 passed in 0.01s\n", "hgm's canary"),
        (0, rep((A, "passed"), (C, "skipped"), (B, "passed")), "2 passed, 1 skipped in 0.01s\n", "reported skipped"),
        (1, rep((A, "passed"), (C, "passed"), (B, "failed"), ends=("fail",)), CANARY_FAILED, "hgm's canary"),
        (0, rep((A, "passed"), (C, "failed"), (B, "passed"), ends=("fail",)), CANARY_FAILED,
         "exited as if hgm's canary had passed"),
        (1, rep((A, "passed"), (C, "failed"), (B, "passed"), ends=("ok",)), CANARY_FAILED,
         "end-of-run record says all passed, hgm's canary included"),
        (1, rep((A, "passed"), (B, "passed"), ends=("fail",)), "2 passed in 0.01s\n", "1 of 3 tests never reported"),
        (1, rep((A, "passed"), (C, "failed"), (B, "skipped"), ends=("fail",)),
         "1 failed, 1 passed, 1 skipped in 0.1s\n",
         "tests reported as not passed: test_b"),
    ],
)
def test_a_canary_that_did_not_fail_is_flagged(task, rc: int, report: Report, out: str, reason: str) -> None:
    status, detail, flag = verdict(task, run(rc, out), WITH_CANARY, report)
    assert status is EvalStatus.FAILED and flag is VerdictFlag.SUSPECTED_TAMPERING, detail
    assert detail.startswith(f"suspected tampering: exit {rc} but ") and reason in detail, detail


def test_a_tampering_record_is_flagged_whatever_the_exit(task) -> None:
    for rc, out in ((1, CANARY_FAILED), (0, "3 passed in 0.01s\n")):
        report = rep((A, "passed"), (C, "failed"), (B, "passed"), ends=("fail",))
        report.tampering.append("1 changed: unittest.case.TestCase.assertEqual")
        status, detail, flag = verdict(task, run(rc, out), WITH_CANARY, report)
        assert status is EvalStatus.FAILED and flag is VerdictFlag.SUSPECTED_TAMPERING, detail
        assert "TestCase.assertEqual" in detail, detail


def test_with_a_canary_genuine_failures_stay_plain_failures(task) -> None:
    report = rep((A, "passed"), (C, "failed"), (B, "failed"), ends=("fail",))
    failing = verdict(task, run(1, "2 failed, 1 passed in 0.1s\n"), WITH_CANARY, report)
    assert failing == (EvalStatus.FAILED, "1 of 2 tests failed: test_b", None)


def test_tampering_records_read_back(tmp_path: Path) -> None:
    what = "after a test: expect changed"
    path = tmp_path / "report"
    path.write_text(signed("start jest", f"tamper {what.encode().hex()}", "end fail"))
    report = read_report(path, KEY)
    assert report.problem is None and report.tampering == [what] and report.ends == ["fail"]


def test_with_a_canary_a_build_that_failed_is_a_plain_failure(task) -> None:
    """Exit 1 (rust: 101) is also what a failed build exits with: no tests ran, so no flag."""
    failed_build = verdict(task, run(1, "E   SyntaxError: invalid syntax\nno tests ran in 0.1s\n"), WITH_CANARY,
                           rep(problem="no report file report (the runner never reported, or the report was deleted)"))
    assert failed_build == (EvalStatus.FAILED, "exit 1: no tests ran in 0.1s", None)
    deleted = verdict(task, run(1, CANARY_FAILED), WITH_CANARY, rep(problem="no report file report"))
    assert deleted[2] is VerdictFlag.SUSPECTED_TAMPERING, deleted  # but tests ran: the report went missing
