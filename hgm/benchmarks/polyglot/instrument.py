"""Put hgm's test reporter (reporters/) into a scoring copy, and say what the verdict checks.

Trusted edits of the benchmark's own files, made before the sandbox starts: a plugin file the
runner loads (python, javascript), a package with a TestMain plus one `hgmTrack(t)` call at the
top of every test function (go), a module plus one guard at the top of every `#[test]` fn (rust),
a listener included in Catch's main (cpp); java's listener ships in the prepared runner jar.
And one canary test per run (canary.py). Rewritten test files are written from the benchmark's
text (go, rust) or from the copy's un-skipped test file, which no solution change can touch
(workspace.solution_paths never names a test file).

The test files and the reporter are mounted read-only into the sandbox (`Instrumented.read_only`),
so nothing that runs there can change the tests or the reporter between compiling and running.
"""

from __future__ import annotations

import random
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hgm.benchmarks.polyglot.canary import (
    Canary,
    c_like_canary,
    go_canary,
    javascript_canary,
    python_canary,
    rust_canary,
)
from hgm.benchmarks.polyglot.loader import PolyglotTask
from hgm.benchmarks.polyglot.testcases import (
    _GO_TEST,
    ExpectedTest,
    _go_builds,
    expected_tests,
    rust_default_features,
    rust_file_tests,
)

_REPORTERS = resources.files("hgm.benchmarks.polyglot").joinpath("reporters")
HGM_DIR = ".hgm"
"""Directory in the scoring copy for reporter files (python, javascript, rust)."""


@dataclass(frozen=True)
class Instrumented:
    expected: tuple[ExpectedTest, ...]
    """The tests the benchmark's files define (testcases.py)."""
    read_only: tuple[str, ...]
    """Paths in the copy mounted read-only: the test files and the reporter."""
    reports: tuple[str, ...] = ("report",)
    """Report files the runner writes in the channel directory (rust: one per test target)."""
    ends: bool = True
    """Whether the reporter writes an end-of-run record (libtest has no end-of-run hook)."""
    refused: str = ""
    """Why this solution is not run at all (rust: it would run code at build time)."""


def reporter_source(name: str) -> bytes:
    return _REPORTERS.joinpath(name).read_bytes()


def _put(copy: Path, rel: str, content: bytes | str) -> None:
    path = copy / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)


def _with_canary(expected: list[ExpectedTest], made: Canary | None, failed: str = "failed") -> tuple[ExpectedTest, ...]:
    """The expected tests plus hgm's canary, whose passing outcome is `failed` (rust: panicked)."""
    if made is None:
        return tuple(expected)
    return (*expected, ExpectedTest(made.name, failed, made.file, canary=True))


def _python(task: PolyglotTask, copy: Path, rng: random.Random) -> Instrumented:
    _put(copy, f"{HGM_DIR}/hgm_pytest_report.py", reporter_source("hgm_pytest_report.py"))
    expected = expected_tests(task)
    made = python_canary(copy, rng.choice(sorted({t.file for t in expected})), rng)
    return Instrumented(_with_canary(expected, made), (*task.test_files, HGM_DIR))


def _javascript(task: PolyglotTask, copy: Path, rng: random.Random) -> Instrumented:
    for name in ("hgm_jest_reporter.js", "hgm_jest_setup.js"):
        _put(copy, f"{HGM_DIR}/{name}", reporter_source(name))
    expected = expected_tests(task)
    made = javascript_canary(copy, rng.choice(sorted({t.file for t in expected})), expected, rng)
    return Instrumented(_with_canary(expected, made), (*task.test_files, HGM_DIR))


def _java(task: PolyglotTask, copy: Path, rng: random.Random) -> Instrumented:
    expected = expected_tests(task)
    made = c_like_canary("java", copy, rng.choice(sorted({t.file for t in expected})), expected, rng)
    return Instrumented(_with_canary(expected, made), ("src/test",))


def _insert(text: str, at: list[tuple[int, str]]) -> str:
    for offset, snippet in sorted(at, reverse=True):
        text = text[:offset] + snippet + text[offset:]
    return text


GO_MAIN = """package {package}

import (
\t"os"
\t"testing"

\thgmverdict "{module}/hgmverdict"
)

func TestMain(m *testing.M) {{ os.Exit(hgmverdict.Run(m)) }}

func hgmTrack(t *testing.T) {{ hgmverdict.Track(t) }}
"""


def _go(task: PolyglotTask, copy: Path, rng: random.Random) -> Instrumented:
    expected = expected_tests(task)
    test_files = sorted(p.name for p in task.path.glob("*_test.go"))
    texts = {name: (task.path / name).read_text() for name in test_files}
    made = None
    if expected:
        rel = rng.choice(sorted({t.file for t in expected}))
        functions = {
            m for p in task.path.glob("*.go") for m in re.findall(r"^func (?:\([^)]*\)\s*)?(\w+)", p.read_text(), re.M)
        }
        if found := go_canary(texts[rel], sorted(functions), rng):
            texts[rel], name = found
            made = Canary(name, rel)
    for name in test_files:
        text = texts[name]
        calls = [(m.end(), f" hgmTrack({m.group(2)});") for m in _GO_TEST.finditer(text)] if _go_builds(text) else []
        _put(copy, name, _insert(text, calls))
    first = (task.path / task.test_files[0]).read_text()
    package = re.search(r"^package (\w+)", first, re.M).group(1)  # type: ignore[union-attr]
    module = re.search(r"^module (\S+)", (task.path / "go.mod").read_text(), re.M).group(1)  # type: ignore[union-attr]
    _put(copy, "hgm_main_test.go", GO_MAIN.format(package=package, module=module))
    _put(copy, "hgmverdict/hgmverdict.go", reporter_source("hgmverdict.go"))
    return Instrumented(_with_canary(expected, made), (*test_files, "hgm_main_test.go", "hgmverdict"))


RUST_MOD = f'\n#[path = "../{HGM_DIR}/hgm_verdict.rs"]\nmod hgm_verdict;\n'


def rust_targets(task: PolyglotTask) -> list[str]:
    """The benchmark's test targets: tests/<target>.rs."""
    return sorted(p.stem for p in (task.path / "tests").glob("*.rs"))


def rust_build_code(copy: Path) -> str:
    """Why the solution's Cargo.toml would run its own code at build time (before the tests'
    reporter has the key), or "" when it does not."""
    try:
        manifest = tomllib.loads((copy / "Cargo.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        return f"Cargo.toml does not parse ({e})"
    if manifest.get("package", {}).get("build", False) is not False:
        return "Cargo.toml declares a build script; solutions may not run code at build time"
    lib = manifest.get("lib", {})
    if lib.get("proc-macro") or lib.get("proc_macro"):
        return "Cargo.toml makes the library a proc-macro; solutions may not run code at build time"
    return ""


def _rust(task: PolyglotTask, copy: Path, rng: random.Random) -> Instrumented:
    expected = expected_tests(task)
    features = rust_default_features((task.path / "Cargo.toml").read_text())
    texts = {f"tests/{target}.rs": (task.path / f"tests/{target}.rs").read_text() for target in rust_targets(task)}
    made = None
    if plain := sorted({t.file for t in expected if not t.optional and t.passing == "returned"}):
        rel = rng.choice(plain)
        if found := rust_canary(texts[rel], rng, features):
            texts[rel], name = found
            made = Canary(name, rel)
    for rel, text in texts.items():
        guards = [
            (
                body_at,
                f' let _hgm_guard = crate::hgm_verdict::Guard::new(module_path!(), "{name.rsplit("::", 1)[-1]}");',
            )
            for name, _, body_at, _ in rust_file_tests(text, features)
        ]
        _put(copy, rel, _insert(text, guards) + RUST_MOD)
    _put(copy, f"{HGM_DIR}/hgm_verdict.rs", reporter_source("hgm_verdict.rs"))
    return Instrumented(_with_canary(expected, made, "panicked"), ("tests", HGM_DIR),
                        tuple(f"report-{t}" for t in rust_targets(task)), ends=False, refused=rust_build_code(copy))


CPP_LISTENER = "hgm_catch_listener.hpp"


def instrument_catch_main(copy: Path) -> None:
    """Include hgm's listener in Catch's main (test/tests-main.cpp), as compiled into the cache."""
    main = copy / "test" / "tests-main.cpp"
    main.write_text(main.read_text().rstrip("\n") + f'\n#include "{CPP_LISTENER}"\n')
    _put(copy, f"test/{CPP_LISTENER}", reporter_source(CPP_LISTENER))


def _cpp(task: PolyglotTask, copy: Path, rng: random.Random) -> Instrumented:
    instrument_catch_main(copy)
    expected = expected_tests(task)
    made = c_like_canary("cpp", copy, rng.choice(sorted({t.file for t in expected})), expected, rng)
    return Instrumented(_with_canary(expected, made), ("test", *task.test_files))


_INSTRUMENT = {"python": _python, "javascript": _javascript, "java": _java, "go": _go, "rust": _rust, "cpp": _cpp}


def instrument(task: PolyglotTask, copy: Path, rng: random.Random | None = None) -> Instrumented:
    """Install the reporter, and the run's canary (canary.py) where there is one, into the
    scoring copy `copy` (see the module docstring). `rng` places the canary (default: a fresh
    system-random one per call)."""
    return _INSTRUMENT[task.language](task, copy, rng or random.SystemRandom())
