"""How each Polyglot language is tested offline: toolchain check, test script, env, test count.

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
    root = Path(node).resolve().parent
    return Toolchain(True, f"node {version}", dirs=_mountable(root), env={"PATH": f"{root}:{BASE_PATH}"})


@cache
def java_toolchain() -> Toolchain:
    javac = shutil.which("javac")
    version = _first_line(_run([javac, "-version"])) if javac else ""
    if not version or not shutil.which("java"):
        return Toolchain(False, "", "apt-get install -y openjdk-17-jdk-headless")
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


# ---- test counts: None = could not tell, 0 = no tests ran -------------------------------------


def _sum(pattern: str, text: str) -> int:
    return sum(int(m) for m in re.findall(pattern, text))


def count_python(out: str) -> int | None:
    summaries = re.findall(r"^=*\s*(\d+ (?:passed|failed|errors?).*) in [\d.]+s", out, re.M)
    return _sum(r"(\d+) (?:passed|failed|errors?)", summaries[-1]) if summaries else 0


def count_rust(out: str) -> int | None:
    return _sum(r"test result: \w+\. (\d+) passed", out) + _sum(r"; (\d+) failed", out)


def count_go(out: str) -> int | None:
    return len(re.findall(r"^\s*--- (?:PASS|FAIL|SKIP)", out, re.M))


def count_javascript(out: str) -> int | None:
    m = re.search(r"^Tests:.*?(\d+) total", out, re.M)
    return int(m.group(1)) if m else 0


def count_java(out: str) -> int | None:
    m = re.search(r"\[\s*(\d+) tests found\s*\]", out)
    return int(m.group(1)) if m else None


def count_cpp(out: str) -> int | None:
    if m := re.search(r"All tests passed \(\d+ assertions? in (\d+) test cases?\)", out):
        return int(m.group(1))
    if m := re.search(r"test cases:\s+(\d+)", out):
        return int(m.group(1))
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
    """bash script run in the scoring copy; {tests} = the test files, {deps} = deps dir."""
    count_tests: Callable[[str], int | None]
    unskip: Callable[[Path, tuple[str, ...]], None] = unskip_none
    extra_solution_globs: tuple[str, ...] = ()
    """New files an agent may add beside its solution (e.g. Java helper classes)."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment; {work} = the scoring copy, {deps} = this language's deps dir."""


JAVA_OPTS = "-Xmx768m -Xss8m -XX:+UseSerialGC -XX:CICompilerCount=2"  # full tiered JIT: C1-only made alphametics 3x slower
JUNIT_ARGS = (
    "execute", "--class-path=.build/main:.build/test", "--scan-classpath=.build/test", "--disable-banner",
    "--details=tree", "--details-theme=ascii", "--fail-if-no-tests",
    "--config=junit.jupiter.conditions.deactivate=org.junit.*DisabledCondition",  # run @Disabled tests too
)
"""Java: one JVM compiles main and test sources and runs JUnit (javarunner/HgmJavaTest.java)."""

SPECS: dict[str, LanguageSpec] = {
    "python": LanguageSpec(
        "python",
        python_toolchain,
        "exec /usr/bin/python3 -m pytest -q -rA --tb=short -p no:cacheprovider {tests}",
        count_python,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    ),
    "rust": LanguageSpec(
        "rust",
        rust_toolchain,
        "exec cargo test --offline -- --include-ignored",
        count_rust,
        extra_solution_globs=("src/**/*.rs",),
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
        "exec go test -v ./...",
        count_go,
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
        "exec node node_modules/jest/bin/jest.js --ci --colors=false --watchman=false "
        "--cacheDirectory={work}/.jest-cache {tests}",
        count_javascript,
        unskip_javascript,
    ),
    "java": LanguageSpec(
        "java",
        java_toolchain,
        'LIBS=$(ls {deps}/lib/*.jar | tr "\\n" : | sed "s/:$//")\n'
        f"exec java {JAVA_OPTS} -XX:SharedArchiveFile={{deps}}/hgm.jsa -Xlog:cds=off -Xlog:cds+dynamic=off "
        f'-cp "{{deps}}/hgm-runner.jar:$LIBS" HgmJavaTest "$LIBS" {" ".join(shlex.quote(a) for a in JUNIT_ARGS)}',
        count_java,
        extra_solution_globs=("src/main/java/**/*.java",),
    ),
    "cpp": LanguageSpec(
        "cpp",
        cpp_toolchain,
        "set -e; mkdir -p .build && cd .build\n"
        "cmake -DEXERCISM_RUN_ALL_TESTS=1 -DCMAKE_CXX_COMPILER_LAUNCHER=ccache .. > cmake.log "
        "|| { cat cmake.log; exit 1; }\n"
        "exec make --no-print-directory",
        count_cpp,
        env={
            "CCACHE_DIR": "{work}/.ccache",
            "CCACHE_REMOTE_STORAGE": "file://{deps}/ccache|read-only",
            "CCACHE_BASEDIR": "{work}",
            "CCACHE_NOHASHDIR": "1",
            "CCACHE_NOSTATS": "1",
        },
    ),
}
