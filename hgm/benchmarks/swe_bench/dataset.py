"""SWE-bench instances in the official schema, and the subsets hgm ships.

Where instances come from (`load_instances(name_or_path)`):
- a Hub name users know: `verified`, `lite`, `full` (SWE-bench/SWE-bench_Verified, _Lite,
  SWE-bench), or any `owner/name` dataset id, loaded with `datasets.load_dataset`;
- a local `.json` / `.jsonl` / `.parquet` file in the Hub's column layout (also through `datasets`);
- a local directory in the `swebench` package's task-repo layout (sweb.yaml, tasks/<id>/...):
  how users bring their own task suite; a task's Dockerfile there builds its image.

Rows keep every column they have; `make_test_spec` needs image, eval_script, log_parser and
eval_type (current Hub datasets carry them; old princeton-nlp/* rows do not: UserError).
Subsets: id lists under subsets/ (the HGM paper's Verified 10, 50, their union 60, and 140), or
any file of ids (JSON list or one id per line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hgm.errors import UserError

HUB_NAMES = {
    "verified": "SWE-bench/SWE-bench_Verified",
    "lite": "SWE-bench/SWE-bench_Lite",
    "full": "SWE-bench/SWE-bench",
}
SUBSET_DIR = Path(__file__).parent / "subsets"
SUBSET_ALIASES = {"small": "verified-10", "medium": "verified-50", "big": "verified-140"}
"""The paper's names (as for Polyglot) -> hgm's subset files."""
REQUIRED = ("instance_id", "repo", "base_commit", "problem_statement", "patch", "test_patch", "FAIL_TO_PASS",
            "PASS_TO_PASS", "version", "image", "eval_script", "log_parser", "eval_type")
INSTALL_FIX = "pip install 'hgm[swe-bench]'  (the official swebench package and datasets)"


@dataclass(frozen=True)
class SWEBenchTask:
    id: str
    problem_statement: str
    repo: str
    image: str
    instance: dict[str, Any] = field(repr=False, hash=False, compare=False)
    """The whole row, as the swebench package expects it."""
    build_context: Path | None = None
    """Task-repo directory holding the Dockerfile of `image` (None: pull it)."""
    language: str = "python"
    name: str = "testbed"

    @property
    def test_files(self) -> list[str]:
        """Files the instance's test_patch touches."""
        return patch_files(self.instance.get("test_patch") or "")


def patch_files(patch: str) -> list[str]:
    files = []
    for line in patch.splitlines():
        if line.startswith("diff --git a/"):
            files.append(line.split(" b/", 1)[-1])
    return files


def require_swebench() -> None:
    try:
        import datasets  # noqa: F401
        import swebench  # noqa: F401
    except ImportError:
        raise UserError(f"SWE-bench needs the optional dependencies: {INSTALL_FIX}") from None


def _task(row: dict[str, Any], build_context: Path | None = None) -> SWEBenchTask:
    missing = [k for k in REQUIRED if row.get(k) in (None, "") and k != "PASS_TO_PASS"]
    if missing:
        raise UserError(f"SWE-bench instance {row.get('instance_id', '?')} lacks {', '.join(missing)}: hgm grades "
                        "with swebench>=5, which needs the current datasets (SWE-bench/SWE-bench_Verified, ...), "
                        "not the old princeton-nlp/* ones")
    return SWEBenchTask(id=row["instance_id"], problem_statement=row["problem_statement"], repo=row["repo"],
                        image=row["image"], instance=dict(row), build_context=build_context)


def _from_task_repo(path: Path) -> list[SWEBenchTask]:
    from swebench.task.repo import load_task_repo, task_paths

    try:
        rows = load_task_repo(path)
    except (OSError, KeyError, ValueError) as e:
        raise UserError(f"{path} is not a task repo the swebench package can read ({e})") from None
    dirs = task_paths(path)
    return [_task(r, dirs[r["instance_id"]] if (dirs[r["instance_id"]] / "Dockerfile").is_file() else None)
            for r in rows]


def _with_datasets(name: str, split: str) -> list[dict[str, Any]]:
    import datasets

    path = Path(name).expanduser()
    try:
        if path.suffix in (".json", ".jsonl") and path.is_file():
            data = datasets.load_dataset("json", data_files=str(path), split="train")
        elif path.suffix == ".parquet" and path.is_file():
            data = datasets.load_dataset("parquet", data_files=str(path), split="train")
        else:
            data = datasets.load_dataset(HUB_NAMES.get(name.lower(), name), split=split)
    except Exception as e:  # noqa: BLE001 - the Hub or a file: one message with the fix
        raise UserError(f"could not load the SWE-bench dataset {name!r} (split {split}) with `datasets`: "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}. Without access to "
                        "the Hugging Face Hub, save it elsewhere as parquet/JSONL and pass --dataset FILE") from None
    return [dict(row) for row in data]


def load_instances(name_or_path: str, split: str = "test") -> list[SWEBenchTask]:
    """Every instance of a dataset (see the module docstring), in its own order."""
    require_swebench()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if (path / "tasks").is_dir():
            return _from_task_repo(path.resolve())
        raise UserError(f"{path} is a directory but not a task repo (sweb.yaml + tasks/<instance_id>/...)")
    if path.suffix in (".json", ".jsonl", ".parquet") and not path.is_file():
        raise UserError(f"dataset file {path} not found")
    return [_task(row) for row in _with_datasets(name_or_path, split)]


def subset_ids(subset: str) -> list[str] | None:
    """Ids of a named subset or of an id-list file; None for `all`."""
    if subset == "all":
        return None
    name = SUBSET_ALIASES.get(subset, subset)
    file = SUBSET_DIR / f"{name}.json"
    if not file.is_file():
        file = Path(subset).expanduser()
        if not file.is_file():
            known = ", ".join(["all", *sorted(p.stem for p in SUBSET_DIR.glob("*.json")), *SUBSET_ALIASES])
            raise UserError(f"unknown SWE-bench subset {subset!r}: give one of {known}, or a file of instance ids "
                            "(a JSON list or one id per line)")
    text = file.read_text()
    try:
        ids = json.loads(text)
    except ValueError:
        ids = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise UserError(f"{file} must hold a JSON list of instance ids, or one id per line")
    return ids


def subsets() -> list[str]:
    return sorted(p.stem for p in SUBSET_DIR.glob("*.json"))
