"""How each Polyglot language is tested offline: toolchain check, test script, env, console summary.

The test script runs in the sandbox with the scoring copy (benchmark tests + agent solution) as
its working directory; shared dependencies (see deps.py) are mounted read-only. Every test runs:
the script or the copy un-skips xtest / @Disabled / #[ignore] / EXERCISM_RUN_ALL_TESTS.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

SYSTEM_PREFIXES = ("/usr/", "/bin/", "/lib", "/etc/")
"""Visible read-only in every sandbox; toolchains elsewhere are mounted in."""
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Toolchain:
    ok: bool
    version: str
    fix: str = ""
    """When not ok: the command that installs it."""
    dirs: tuple[Path, ...] = ()
    """Host directories the sandbox must see (read-only) for the toolchain to run."""
    env: dict[str, str] = field(default_factory=dict)


def _run(argv: list[str]) -> str | None:
    """A toolchain probe's output, or None if it fails. Runs in / so that no project config in the
    caller's directory (a pyproject.toml with pytest addopts, say) changes the answer."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout + done.stderr).strip() if done.returncode == 0 else None


def _first_line(text: str | None) -> str:
    return text.splitlines()[0] if text else ""


def _version_tuple(text: str) -> tuple[int, ...]:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g or 0) for g in m.groups()) if m else (0,)


def _mountable(*paths: Path) -> tuple[Path, ...]:
    return tuple(p for p in paths if not str(p).startswith(SYSTEM_PREFIXES))


INSTALL = "bash scripts/install_toolchains.sh"


@cache
def python_toolchain() -> Toolchain:
    out = _run(["/usr/bin/python3", "-m", "pytest", "--version"])
    if out is None:
        return Toolchain(False, "", f"apt-get install -y python3-pytest (or {INSTALL})")
    return Toolchain(True, _first_line(_run(["/usr/bin/python3", "--version"])) + ", " + _first_line(out))


@cache
def go_toolchain() -> Toolchain:
    go = shutil.which("go")
    out = _run([go, "env", "GOROOT", "GOVERSION"]) if go else None
    if out is None:
        return Toolchain(False, "", f"install Go >= 1.24: {INSTALL} (or https://go.dev/dl)")
    goroot, version = out.splitlines()[:2]
    if _version_tuple(version) < (1, 24):  # GOCACHEPROG (the shared read-only build cache) needs 1.24
        return Toolchain(False, version, f"Go {version} is too old (need >= 1.24): {INSTALL}")
    root = Path(goroot).resolve()
    return Toolchain(True, version, dirs=_mountable(root), env={"PATH": f"{root}/bin:{BASE_PATH}"})


@cache
def rust_toolchain() -> Toolchain:
    sysroot = _run(["rustc", "--print", "sysroot"]) if shutil.which("rustc") else None
    if sysroot is None or not (Path(sysroot) / "bin" / "cargo").exists():
        return Toolchain(False, "", "install Rust with cargo (rustup, or apt-get install -y cargo)")
    root = Path(sysroot).resolve()
    version = _first_line(_run([str(root / "bin" / "cargo"), "--version"]))
    return Toolchain(True, version, dirs=_mountable(root), env={"PATH": f"{root}/bin:{BASE_PATH}"})


@cache
def node_toolchain() -> Toolchain:
    node = shutil.which("node")
    version = _first_line(_run([node, "--version"])) if node else ""
    if not version:
        return Toolchain(False, "", "apt-get install -y nodejs npm")
    if _version_tuple(version) < (16,):
        return Toolchain(False, version, f"Node {version} is too old for jest 29: install Node >= 18")
    assert node is not None  # a version came from it
    root = Path(node).resolve().parent
    return Toolchain(True, f"node {version}", dirs=_mountable(root), env={"PATH": f"{root}:{BASE_PATH}"})


@cache
def java_toolchain() -> Toolchain:
    javac = shutil.which("javac")
    version = _first_line(_run([javac, "-version"])) if javac else ""
    if not version or not shutil.which("java"):
        return Toolchain(False, "", "apt-get install -y openjdk-17-jdk-headless")
    assert javac is not None  # a version came from it
    home = Path(javac).resolve().parent.parent
    return Toolchain(True, version, dirs=_mountable(home), env={"PATH": f"{home}/bin:{BASE_PATH}"})


@cache
def cpp_toolchain() -> Toolchain:
    missing = [t for t in ("cmake", "make", "g++", "ccache") if shutil.which(t) is None]
    if not Path("/usr/include/boost/date_time").is_dir():
        missing.append("libboost-date-time-dev")
    if missing:
        return Toolchain(False, "", f"missing {', '.join(missing)}: {INSTALL}")
    version = f"{_first_line(_run(['g++', '--version']))}, {_first_line(_run(['cmake', '--version']))}"
    return Toolchain(True, version)


# ---- the runner's console summary: (passed, failed), or None when there is none ----------------


def _counts(text: str, passed: str, failed: str) -> tuple[int, int]:
    return _sum(passed, text), _sum(failed, text)


def _sum(pattern: str, text: str) -> int:
    return sum(int(m) for m in re.findall(pattern, text))


def console_python(out: str) -> tuple[int, int] | None:
    summaries = re.findall(r"^=*\s*(\d+ (?:passed|failed|errors?|skipped).*) in [\d.]+s", out, re.M)
    return _counts(summaries[-1], r"(\d+) passed", r"(\d+) (?:failed|errors?)") if summaries else None


def console_rust(out: str) -> tuple[int, int] | None:
    results = re.findall(r"^test result: \w+\. \d+ passed; \d+ failed", out, re.M)
    return _counts("\n".join(results), r"(\d+) passed", r"(\d+) failed") if results else None


def console_go(out: str) -> tuple[int, int] | None:
    top = re.findall(r"^--- (PASS|FAIL): ", out, re.M)  # subtests are indented
    return (top.count("PASS"), top.count("FAIL")) if top else None


def console_javascript(out: str) -> tuple[int, int] | None:
    m = re.search(r"^Tests:(.*)$", out, re.M)
    return _counts(m.group(1), r"(\d+) passed", r"(\d+) failed") if m else None


def console_java(out: str) -> tuple[int, int] | None:
    m = re.search(r"\[\s*(\d+) tests successful\s*\]", out)
    f = re.search(r"\[\s*(\d+) tests failed\s*\]", out)
    return (int(m.group(1)), int(f.group(1)) if f else 0) if m else None


def console_cpp(out: str) -> tuple[int, int] | None:
    if m := re.search(r"All tests passed \(\d+ assertions? in (\d+) test cases?\)", out):
        return int(m.group(1)), 0
    if m := re.search(r"^test cases:([^\n]*)", out, re.M):
        return _counts(m.group(1), r"(\d+) passed", r"(\d+) failed")
    return None


# ---- un-skipping, done on the scoring copy (trusted edit of the benchmark's own tests) -------


def unskip_javascript(copy: Path, test_files: tuple[str, ...]) -> None:
    for rel in test_files:
        path = copy / rel
        text = re.sub(r"\bx(test|it|describe)\(", r"\1(", path.read_text())
        path.write_text(re.sub(r"\b(test|it|describe)\.skip\(", r"\1(", text))


def unskip_none(copy: Path, test_files: tuple[str, ...]) -> None:
    return None


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    toolchain: Callable[[], Toolchain]
    script: str
    """bash script run in the scoring copy with the run's key on its stdin (which the runner, and
    only the runner, must read); {tests} = the test files, {deps} = deps dir, {channel} = the
    report directory, {name} = the exercise, {targets} = rust's test targets."""
    console: Callable[[str], tuple[int, int] | None]
    """(passed, failed) from the runner's console summary, None when there is none."""
    unskip: Callable[[Path, tuple[str, ...]], None] = unskip_none
    extra_solution_globs: tuple[str, ...] = ()
    """New files an agent may add beside its solution (e.g. Java helper classes)."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment; {work} = the scoring copy, {deps} = this language's deps dir."""
    failed_exit: int = 1
    """The script's exit code when tests ran and exactly one failed (hgm's canary: canary.py)."""


JAVA_OPTS = (
    "-Xmx768m -Xss8m -XX:+UseSerialGC -XX:CICompilerCount=2"  # full tiered JIT: C1-only made alphametics 3x slower
)
JUNIT_ARGS = (
    "execute", "--class-path=.build/main:.build/test", "--scan-classpath=.build/test", "--disable-banner",
    "--details=tree", "--details-theme=ascii", "--fail-if-no-tests",
    "--config=junit.jupiter.conditions.deactivate=org.junit.*DisabledCondition",  # run @Disabled tests too
)
"""Java: one JVM compiles main and test sources and runs JUnit (javarunner/HgmJavaTest.java)."""

RUST_SCRIPT = r"""IFS= read -r HGM_KEY || true  # the run's key: kept in this shell, given to each test binary only
log="$TMPDIR/cargo-build.log"
flags=(); for t in {targets}; do flags+=(--test "$t"); done
cargo test --offline --no-run "${flags[@]}" </dev/null 2>"$log"; rc=$?; cat "$log" >&2
[ $rc -eq 0 ] || exit $rc
for t in {targets}; do
  bin=$(sed -n "s|^ *Executable tests/$t\.rs (\(.*\))$|\1|p" "$log" | tail -n 1)
  [ -n "$bin" ] || { echo "test target $t was not built" >&2; exit 1; }
  printf '%s\n' "$HGM_KEY" | HGM_REPORT="{channel}/report-$t" "$bin" --include-ignored || rc=$?
done
exit $rc"""
"""Rust: build the benchmark's test targets (cargo; no key yet), then run each test binary."""

SPECS: dict[str, LanguageSpec] = {
    "python": LanguageSpec(
        "python",
        python_toolchain,
        "exec /usr/bin/python3 -m pytest -q -rA --tb=short -p no:cacheprovider -p hgm_pytest_report {tests}",
        console_python,
        env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": "{work}/.hgm"},
    ),
    "rust": LanguageSpec(
        "rust",
        rust_toolchain,
        RUST_SCRIPT,
        console_rust,
        extra_solution_globs=("src/**/*.rs",),
        failed_exit=101,  # libtest's exit code when a test failed
        env={
            "CARGO_HOME": "{deps}/cargo-home",
            "CARGO_TARGET_DIR": "{work}/.target",
            "CARGO_NET_OFFLINE": "true",
            "CARGO_INCREMENTAL": "0",
            "CARGO_TERM_COLOR": "never",
        },
    ),
    "go": LanguageSpec(
        "go",
        go_toolchain,
        "go test -c -o .hgm-test.bin . </dev/null || exit $?\nexec ./.hgm-test.bin -test.v",
        console_go,
        env={
            "GOPROXY": "off",
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-mod=mod",
            "GOPATH": "{work}/.gopath",
            "GOCACHE": "{work}/.gocache",
            "GOTMPDIR": "{work}/.tmp",
            "GOCACHEPROG": "{deps}/gocacheprog {deps}/gocache {work}/.gocache",
            "CGO_ENABLED": "0",
        },
    ),
    "javascript": LanguageSpec(
        "javascript",
        node_toolchain,
        "ln -sfn {deps}/node_modules node_modules && "
        "exec node node_modules/jest/bin/jest.js {tests} --ci --colors=false --watchman=false "
        "--cacheDirectory={work}/.jest-cache --setupFilesAfterEnv={work}/.hgm/hgm_jest_setup.js "
        "--reporters=default --reporters={work}/.hgm/hgm_jest_reporter.js",
        console_javascript,
        unskip_javascript,
    ),
    "java": LanguageSpec(
        "java",
        java_toolchain,
        'LIBS=$(ls {deps}/lib/*.jar | tr "\\n" : | sed "s/:$//")\n'
        f"exec java {JAVA_OPTS} -XX:SharedArchiveFile={{deps}}/hgm.jsa -Xlog:cds=off -Xlog:cds+dynamic=off "
        f'-cp "{{deps}}/hgm-runner.jar:$LIBS" HgmJavaTest "$LIBS" {" ".join(shlex.quote(a) for a in JUNIT_ARGS)}',
        console_java,
        extra_solution_globs=("src/main/java/**/*.java",),
    ),
    "cpp": LanguageSpec(
        "cpp",
        cpp_toolchain,
        "set -e; mkdir -p .build && cd .build\n"
        "cmake -DEXERCISM_RUN_ALL_TESTS=1 -DCMAKE_CXX_COMPILER_LAUNCHER=ccache .. > cmake.log </dev/null "
        "|| { cat cmake.log; exit 1; }\n"
        "make --no-print-directory {name} </dev/null\n"  # the test binary only: hgm runs it, with the key
        "exec ./{name}",
        console_cpp,
        env={
            "CCACHE_DIR": "{work}/.ccache",
            "CCACHE_REMOTE_STORAGE": "file://{deps}/ccache|read-only",
            "CCACHE_BASEDIR": "{work}",
            "CCACHE_NOHASHDIR": "1",
            "CCACHE_NOSTATS": "1",
        },
    ),
}
