"""Dependencies the Polyglot tests need offline, prepared once by trusted code outside any sandbox.

Everything here lands in `cache_dir()/polyglot-deps/<lang>/` and is mounted READ-ONLY into each
test sandbox, so agent code can use but never change (poison) what later evaluations rely on:

- javascript: one `npm install` of the devDependencies all 49 exercises share -> node_modules,
  symlinked into each scoring copy.
- rust: `cargo fetch` of every exercise's crates (stub and .meta/Cargo-example.toml) into a
  CARGO_HOME; tests build with `cargo test --offline` against it.
- java: JUnit console launcher, AssertJ, rxjava, org.json from Maven Central (`mvn`), see pom.xml;
  hgm-runner.jar: javarunner/ (the runner and hgm's JUnit listener) and a class-data archive.
- go: the standard library compiled for the tests (and for hgm's reporter), in a build-cache layer
  served by our GOCACHEPROG (gocacheprog/main.go): reads from the shared layer, writes to a
  per-evaluation one.
- cpp: a ccache of Catch's test main with hgm's listener (the slow part of every build), used as
  ccache's read-only remote storage; each evaluation has its own empty primary ccache.
- python: nothing (Debian's python3-pytest).

Readiness is a stamp file `READY` holding a fingerprint of the inputs (and, checked before every
test run, a hash of hgm's own runner and reporter files among them).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from hgm.benchmarks.polyglot.instrument import instrument, instrument_catch_main
from hgm.benchmarks.polyglot.languages import JAVA_OPTS, JUNIT_ARGS
from hgm.benchmarks.polyglot.loader import PolyglotTask, load_tasks
from hgm.benchmarks.polyglot.report import new_key
from hgm.benchmarks.polyglot.workspace import copy_exercise
from hgm.errors import UserError
from hgm.paths import cache_dir

NEEDS_DEPS = ("cpp", "go", "java", "javascript", "rust")
_PKG = resources.files("hgm.benchmarks.polyglot")


def deps_root() -> Path:
    return cache_dir() / "polyglot-deps"


def deps_dir(language: str) -> Path:
    return deps_root() / language


_INPUTS = {
    "java": ("pom.xml", "javarunner/HgmJavaTest.java", "javarunner/HgmListener.java"),
    "go": ("gocacheprog/main.go", "reporters/hgmverdict.go"),
    "cpp": ("reporters/hgm_catch_listener.hpp",),
}
_TOOL_VERSION = {"go": ["go", "env", "GOVERSION"], "cpp": ["g++", "--version"], "java": ["javac", "-version"]}


@functools.cache
def _inputs_key(language: str) -> str:
    """A hash of the hgm files a language's prepared deps are built from (the runner, reporters)."""
    h = hashlib.sha256(language.encode())
    for name in _INPUTS.get(language, ()):
        h.update(_PKG.joinpath(name).read_bytes())
    return h.hexdigest()[:16]


def _fingerprint(language: str, tasks: list[PolyglotTask]) -> str:
    """What the prepared files depend on: our inputs, the task list, the tool version."""
    h = hashlib.sha256(language.encode())
    for name in _INPUTS.get(language, ()):
        h.update(_PKG.joinpath(name).read_bytes())
    for task in tasks:
        h.update(task.id.encode())
    if argv := _TOOL_VERSION.get(language):
        done = subprocess.run(argv, capture_output=True)
        h.update(done.stdout + done.stderr)
    return h.hexdigest()[:16]


def is_ready(language: str) -> bool:
    """True when this language's shared dependencies were prepared (or it needs none) from this
    hgm's runner and reporter files: deps an older hgm prepared would leave tests unreported."""
    if language not in NEEDS_DEPS:
        return True
    if language not in _INPUTS:
        return (deps_dir(language) / "READY").is_file()
    try:
        stamp = (deps_dir(language) / "READY").read_text().split()
    except OSError:
        return False
    return stamp[1:2] == [_inputs_key(language)]


def _sh(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str = "") -> None:
    done = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          input=stdin)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise UserError(f"preparing Polyglot dependencies: `{' '.join(argv)}` failed:\n{tail}")


def _scratch_with_reference(task: PolyglotTask, parent: Path) -> Path:
    """A copy of the exercise with the reference solution (and its tests) in place."""
    copy = copy_exercise(task, parent)
    for target, example in task.reference_files().items():
        (copy / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(task.path / example, copy / target)
    return copy


def _prepare_javascript(tasks: list[PolyglotTask], out: Path) -> None:
    package = json.loads((tasks[0].path / "package.json").read_text())
    manifest = {"name": "hgm-polyglot-js-deps", "private": True, "devDependencies": package["devDependencies"]}
    (out / "package.json").write_text(json.dumps(manifest, indent=2))
    _sh(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=out)


def _prepare_rust(tasks: list[PolyglotTask], out: Path) -> None:
    env = {"CARGO_HOME": str(out / "cargo-home")}
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            copy = copy_exercise(task, Path(tmp))
            _sh(["cargo", "fetch", "--quiet"], cwd=copy, env=env)
            example_toml = task.path / ".meta" / "Cargo-example.toml"
            if example_toml.is_file():
                shutil.copyfile(example_toml, copy / "Cargo.toml")
                (copy / "Cargo.lock").unlink(missing_ok=True)
                _sh(["cargo", "fetch", "--quiet"], cwd=copy, env=env)


def _prepare_java(tasks: list[PolyglotTask], out: Path) -> None:
    (out / "pom.xml").write_bytes(_PKG.joinpath("pom.xml").read_bytes())
    _sh(["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={out / 'lib'}",
         "-Dmdep.stripVersion=true"], cwd=out)
    libs = ":".join(str(p) for p in sorted((out / "lib").glob("*.jar")))
    src, runner = out / "runner-src", out / "runner"
    (runner / "META-INF" / "services").mkdir(parents=True)
    src.mkdir()
    sources = [src / name for name in ("HgmJavaTest.java", "HgmListener.java")]
    for path in sources:
        path.write_bytes(_PKG.joinpath(f"javarunner/{path.name}").read_bytes())
    (runner / "META-INF/services/org.junit.platform.launcher.TestExecutionListener").write_text("HgmListener\n")
    _sh(["javac", "-d", str(runner), "-cp", libs, *map(str, sources)])
    _sh(["jar", "cf", str(out / "hgm-runner.jar"), "-C", str(runner), "."])  # with the listener's service file
    with tempfile.TemporaryDirectory() as tmp:  # class-data sharing archive: faster JVM starts
        copy = _scratch_with_reference(next(t for t in tasks if t.name == "sgf-parsing"), Path(tmp))
        _sh(["java", *JAVA_OPTS.split(), f"-XX:ArchiveClassesAtExit={out / 'hgm.jsa'}", "-cp",
             f"{out / 'hgm-runner.jar'}:{libs}", "HgmJavaTest", libs, *JUNIT_ARGS], cwd=copy,
            env={"HGM_REPORT": f"{tmp}/report"}, stdin=new_key() + "\n")


def _prepare_go(tasks: list[PolyglotTask], out: Path) -> None:
    src = out / "gocacheprog-src"
    src.mkdir()
    (src / "main.go").write_bytes(_PKG.joinpath("gocacheprog/main.go").read_bytes())
    (src / "go.mod").write_text("module gocacheprog\n\ngo 1.24\n")
    env = {"GOFLAGS": "", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    _sh(["go", "build", "-o", str(out / "gocacheprog"), "."], cwd=src, env=env)
    with tempfile.TemporaryDirectory() as tmp:
        env |= {
            "GOPROXY": "off", "GOFLAGS": "-mod=mod", "GOCACHE": f"{tmp}/gocache",
            "GOCACHEPROG": f"{out / 'gocacheprog'} - {out / 'gocache'}",
        }
        for task in tasks:  # compile each reference's test binary: warms every std package used
            copy = _scratch_with_reference(task, Path(tmp))
            instrument(task, copy)  # hgm's reporter too (crypto/hmac, ...)
            _sh(["go", "test", "-c", "-o", os.devnull, "."], cwd=copy, env=env)


def _prepare_cpp(tasks: list[PolyglotTask], out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:  # compile only Catch's main (trusted), through ccache into the shared store
            copy = copy_exercise(task, Path(tmp))
            instrument_catch_main(copy)  # Catch's main as scoring compiles it: with hgm's listener
            env = {
                "CCACHE_DIR": f"{tmp}/ccache", "CCACHE_REMOTE_STORAGE": f"file://{out / 'ccache'}",
                "CCACHE_BASEDIR": str(copy), "CCACHE_NOHASHDIR": "1",
            }
            build = copy / ".build"
            build.mkdir()
            _sh(["cmake", "-DEXERCISM_RUN_ALL_TESTS=1", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache", ".."],
                cwd=build, env=env)
            _sh(["make", "--no-print-directory", "test/tests-main.cpp.o"], cwd=build, env=env)


_PREPARE = {
    "javascript": _prepare_javascript,
    "rust": _prepare_rust,
    "java": _prepare_java,
    "go": _prepare_go,
    "cpp": _prepare_cpp,
}


def prepare(root: Path, language: str, *, force: bool = False) -> bool:
    """Prepare one language's shared dependencies (needs the package registries once).
    Returns False when they were already ready."""
    if language not in NEEDS_DEPS:
        return False
    tasks = [t for t in load_tasks(root).values() if t.language == language]
    stamp = deps_dir(language) / "READY"
    key = _fingerprint(language, tasks)
    if not force and stamp.is_file() and stamp.read_text().split()[:1] == [key] and is_ready(language):
        return False
    final = deps_dir(language)
    work = final.with_name(final.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _PREPARE[language](tasks, work)
    (work / "READY").write_text(f"{key}\n{_inputs_key(language)}\n")
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return True
