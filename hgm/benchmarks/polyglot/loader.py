"""Read Polyglot tasks from an Aider-AI/polyglot-benchmark tree; fetch that tree; name subsets.

Layout: `<lang>/exercises/practice/<name>/`, with `.meta/config.json` listing the solution,
test and example (reference) files. Task id: `<lang>__<name>`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from hgm.errors import UserError
from hgm.paths import cache_dir

LANGUAGES = ("cpp", "go", "java", "javascript", "python", "rust")
SUBSETS = ("small", "medium", "all")
UPSTREAM_URL = "https://github.com/Aider-AI/polyglot-benchmark.git"
UPSTREAM_COMMIT = "7e0611e77b54e2dea774cdc0aa00cf9f7ed6144f"
DOC_ORDER = ("instructions.md", "instructions.append.md", "introduction.md", "hints.md")


@dataclass(frozen=True)
class PolyglotTask:
    id: str
    language: str
    name: str
    path: Path
    """The exercise directory in the benchmark tree (read-only source of truth)."""
    solution_files: tuple[str, ...]
    test_files: tuple[str, ...]
    example_files: tuple[str, ...]
    """Reference solution, relative to `path` (mostly under .meta/)."""

    @property
    def problem_statement(self) -> str:
        return problem_statement(self.path)

    def reference_files(self) -> dict[str, str]:
        """Where each reference file goes in the workspace: {solution-relative path: example path}.

        Matched by basename first, then (except in Java, where a file is named after its class)
        by extension onto a solution file still free; the rest (Java helper classes) go beside
        the first solution file (src/main/java/)."""
        placed: dict[str, str] = {}
        by_name = {Path(s).name: s for s in self.solution_files}
        rest = []
        for example in self.example_files:
            target = by_name.get(Path(example).name)
            if target is None or target in placed:
                rest.append(example)
            else:
                placed[target] = example
        for example in rest:
            suffix = Path(example).suffix
            free = [s for s in self.solution_files if Path(s).suffix == suffix and s not in placed]
            if free and self.language != "java":
                placed[free[0]] = example
            else:
                placed[str(Path(self.solution_files[0]).parent / Path(example).name)] = example
        if self.language == "rust" and (self.path / ".meta" / "Cargo-example.toml").is_file():
            placed["Cargo.toml"] = ".meta/Cargo-example.toml"  # the reference's extra crates
        return placed


def problem_statement(exercise: Path) -> str:
    """All .docs/*.md: instructions.md first, then instructions.append.md, introduction.md, hints.md,
    then any other .md in name order."""
    docs = exercise / ".docs"
    names = [n for n in DOC_ORDER if (docs / n).is_file()]
    names += sorted(p.name for p in docs.glob("*.md") if p.name not in DOC_ORDER)
    return "\n\n".join((docs / n).read_text().strip() for n in names) + "\n"


def load_task(root: Path, language: str, name: str) -> PolyglotTask:
    path = root / language / "exercises" / "practice" / name
    files = json.loads((path / ".meta" / "config.json").read_text())["files"]
    return PolyglotTask(
        id=f"{language}__{name}",
        language=language,
        name=name,
        path=path,
        solution_files=tuple(files["solution"]),
        test_files=tuple(files["test"]),
        example_files=tuple(files.get("example", ())),
    )


@cache
def load_tasks(root: Path) -> dict[str, PolyglotTask]:
    """Every task of the tree at `root`, by id, sorted by id."""
    tasks: dict[str, PolyglotTask] = {}
    for language in LANGUAGES:
        practice = root / language / "exercises" / "practice"
        for exercise in sorted(practice.iterdir()) if practice.is_dir() else ():
            if (exercise / ".meta" / "config.json").is_file():
                task = load_task(root, language, exercise.name)
                tasks[task.id] = task
    return dict(sorted(tasks.items()))


def subset_ids(subset: str) -> list[str] | None:
    """Ids of a packaged subset (the HGM paper's), None for `all`. Unknown: UserError."""
    if subset == "all":
        return None
    if subset not in SUBSETS:
        raise UserError(f"unknown Polyglot subset {subset!r}; valid subsets: {', '.join(SUBSETS)}")
    text = resources.files("hgm.benchmarks.polyglot").joinpath("subsets", f"{subset}.json").read_text()
    return list(json.loads(text))


def default_path() -> Path:
    return cache_dir() / "benchmarks" / "polyglot"


def resolve_root(path: Path | None) -> Path:
    """The benchmark tree to use: `path`, else the fetched copy. Missing: UserError with the fix."""
    root = Path(path).expanduser().resolve() if path else default_path()
    if not all((root / lang / "exercises" / "practice").is_dir() for lang in LANGUAGES):
        how = f"--from {path}" if path else "nothing fetched yet"
        raise UserError(
            f"no Polyglot benchmark tree at {root} ({how}). Run `hgm benchmark fetch polyglot`, "
            "or pass --from PATH (or set benchmark.path) to a local polyglot-benchmark checkout."
        )
    return root


def install_copy(src: Path, dest: Path | None = None) -> Path:
    """Copy a local polyglot-benchmark tree (a checkout, an unpacked archive) into `dest` (default:
    the cache dir), so that commands find it without --from: the offline `hgm benchmark fetch`."""
    root = resolve_root(src)  # UserError unless it holds all six languages
    dest = dest or default_path()
    if dest.exists() and dest.resolve() == root:
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(root, tmp, symlinks=True, copy_function=shutil.copy)  # modes: gradlew stays executable
    for dirpath, _, _ in os.walk(tmp):  # copytree copies directory modes; a read-only source must
        os.chmod(dirpath, 0o755)        # not make the copy undeletable by the next fetch
    if dest.is_symlink():
        dest.unlink()
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def fetch(dest: Path | None = None, *, commit: str = UPSTREAM_COMMIT, url: str = UPSTREAM_URL) -> Path:
    """git clone the upstream tree at the pinned commit into `dest` (default: the cache dir)."""
    dest = dest or default_path()
    if (dest / ".git").is_dir():
        head = subprocess.run(["git", "-C", str(dest), "rev-parse", "HEAD"], capture_output=True, text=True)
        if head.stdout.strip() == commit:
            return dest
    if shutil.which("git") is None:
        raise UserError("git is not installed: apt-get install git (or pass --from PATH to a local copy)")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        ["git", "-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60",
         "clone", "--quiet", "--no-checkout", url, str(tmp)],
        ["git", "-C", str(tmp), "checkout", "--quiet", commit],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError(
                f"could not fetch the Polyglot benchmark from {url} at {commit[:12]} "
                f"({(done.stderr.strip().splitlines() or ['?'])[-1]}). Offline? Pass --from PATH to a "
                "local copy of Aider-AI/polyglot-benchmark (or set benchmark.path)."
            )
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
