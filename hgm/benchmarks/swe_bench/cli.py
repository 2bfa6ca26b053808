"""`hgm benchmark fetch|list|validate swe-bench` (the registry's entry points to these)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from hgm.benchmarks.entry import CommandOptions
from hgm.benchmarks.swe_bench.dataset import SWEBenchTask, subset_ids
from hgm.errors import UserError
from hgm.markup import literal

if TYPE_CHECKING:
    from hgm.benchmarks.swe_bench import SWEBenchBenchmark
    from hgm.config import HGMConfig


def _open(dataset: str | None, base: str | None) -> tuple[SWEBenchBenchmark, HGMConfig]:
    from hgm.benchmarks.swe_bench import SWEBenchBenchmark
    from hgm.config import load_config

    cfg = load_config()
    with Console(stderr=True).status(f"loading SWE-bench instances from {literal(dataset or cfg.benchmark.dataset)}"):
        bench = SWEBenchBenchmark.open(dataset or cfg.benchmark.dataset, cfg.benchmark.split,
                                       build_base=base or cfg.benchmark.build_base)
    return bench, cfg


def _select(bench: SWEBenchBenchmark, subset: str | None, tasks: str | None, default: str) -> list[SWEBenchTask]:
    if tasks:
        return [bench.task(t.strip()) for t in tasks.split(",") if t.strip()]
    return bench.tasks(subset or default)


def fetch(o: CommandOptions) -> None:
    """Pull (or build) each selected instance image once, with progress; export its /testbed (and,
    for bwrap, its root filesystem) into the cache."""
    from hgm.config import load_config

    if o.from_ is not None or o.output is not None:
        raise UserError("--from and -o are for polyglot; SWE-bench instances come from --dataset "
                        "(a Hub name, a local file or a task-repo directory)")
    dataset, subset, tasks, sandbox, base = o.dataset, o.subset, o.tasks, o.sandbox, o.base
    if not tasks:
        subset_ids(subset or load_config().benchmark.subset)
    bench, cfg = _open(dataset, base)
    backend = sandbox or cfg.sandbox.backend
    if backend not in ("docker", "bwrap"):
        raise UserError(f"SWE-bench runs on the docker or bwrap backend, not {backend!r}")
    selected = _select(bench, subset, tasks, cfg.benchmark.subset)
    out = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    start = time.monotonic()
    with Progress(*columns, console=out) as progress:
        overall = progress.add_task(f"{len(selected)} instances", total=len(selected))
        for task in selected:
            bar = progress.add_task(f"{task.id}: image", total=None)

            def pulled(what: str, done: int, total: int, bar: TaskID = bar) -> None:
                progress.update(bar, completed=done, total=total or None)

            def built(line: str, bar: TaskID = bar, task_id: str = task.id) -> None:
                if line.startswith("STEP") or line.startswith("Step "):
                    progress.update(bar, description=f"{task_id}: {literal(line[:60])}")

            bench.envs.get(task, backend=backend, on_line=built, on_progress=pulled)
            progress.update(bar, description=f"{task.id}: ready", completed=1, total=1)
            progress.advance(overall)
    out.print(f"[green]{len(selected)} instance environments ready[/] for the {backend} backend "
              f"in {time.monotonic() - start:.0f} s (cache: {literal(bench.envs.root)})")


def list_subsets(o: CommandOptions) -> None:
    """Shipped subsets with their sizes, repositories and ids (offline: they are files in the
    package); how many of their ids the dataset holds only when it can be read quickly."""
    from hgm.benchmarks.swe_bench.dataset import subsets
    from hgm.cli_benchmark import result_console

    every, why_not = _reachable_instances(o.dataset)
    title = "SWE-bench subsets" + (f" (dataset {literal(o.dataset or _configured_dataset())}: {len(every)} instances)"
                                   if every is not None else "")
    table = Table(title=title)
    columns = ["subset", "count", *(["in dataset"] if every is not None else []), "repositories"]
    for col in columns:
        table.add_column(col, justify="right" if col in ("count", "in dataset") else "left")
    static = {name: subset_ids(name) or [] for name in subsets()}
    for name, ids in [("all", list(every or [])), *static.items()]:
        repos: dict[str, int] = {}
        for i in ids:
            repo = every[i].repo if every and i in every else i.rsplit("-", 1)[0].replace("__", "/")
            repos[repo] = repos.get(repo, 0) + 1
        size = str(len(ids)) if ids or every is not None else "the dataset's"
        held = [str(sum(i in every for i in ids))] if every is not None else []
        table.add_row(name, size, *held, literal(", ".join(f"{k} {v}" for k, v in
                                                          sorted(repos.items(), key=lambda kv: -kv[1])[:6])))
    out = result_console()
    out.print(table)
    out.print("aliases: small = verified-10, medium = verified-50, big = verified-140; "
              "--subset FILE takes any list of instance ids")
    if why_not:
        out.print(f"[yellow]no dataset counts:[/] {literal(why_not)}", soft_wrap=True)
    for name, ids in static.items():
        out.print(f"[bold]{name}[/]: {literal(' '.join(ids))}", soft_wrap=True)


def _configured_dataset() -> str:
    from hgm.config import load_config

    return load_config().benchmark.dataset


def _reachable_instances(dataset: str | None) -> tuple[dict[str, SWEBenchTask] | None, str]:
    """The dataset's instances by id when it can be read without a long wait (a local file or
    directory, a cached Hub copy, or the Hub when a 3 s probe reaches it), else (None, why not)."""
    from hgm.benchmarks.swe_bench.dataset import require_swebench
    from hgm.llm.preflight import Endpoint, probe

    name = dataset or _configured_dataset()
    unreachable = ""
    if not Path(name).expanduser().exists() and not os.environ.get("HF_HUB_OFFLINE"):
        hub = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        cause = probe(Endpoint(hub.scheme or "https", hub.hostname or "huggingface.co",
                               hub.port or (80 if hub.scheme == "http" else 443), ()))
        if cause:
            unreachable = f"the Hub ({hub.hostname}) cannot be reached ({cause})"
            if "datasets" in sys.modules:  # it read HF_HUB_OFFLINE when imported: it would retry for long
                return None, unreachable
            os.environ["HF_HUB_OFFLINE"] = "1"  # `datasets` may then use a cached copy, and fails fast without
    try:
        require_swebench()
    except UserError as e:
        return None, str(e)
    try:
        bench, _ = _open(dataset, None)
    except UserError as e:
        return None, (f"{unreachable} and {name!r} is not in the local cache" if unreachable else str(e)) + \
            "; a local copy works offline: --dataset FILE.parquet|FILE.jsonl|DIR"
    return bench.all_tasks(), ""


def validate(o: CommandOptions) -> None:
    """Gold patches must be resolved, unpatched bases not; the same table as Polyglot's."""
    from hgm.benchmarks.swe_bench.validate import summarize
    from hgm.benchmarks.swe_bench.validate import validate as run_validation
    from hgm.cli_benchmark import exit_on_unexpected, result_console, validate_with_progress
    from hgm.sandbox import get_sandbox

    dataset, subset, tasks, jobs, log_dir, timeout, base = o.dataset, o.subset or "all", o.tasks, o.workers, \
        o.output, o.timeout, o.base
    sandbox = o.sandbox or "bwrap"
    if not tasks:
        subset_ids(subset)
    bench, _ = _open(dataset, base)
    selected = _select(bench, subset, tasks, "all")
    box = get_sandbox(sandbox)
    out = Console(stderr=True)
    with out.status(f"preparing {len(selected)} instance environments (images, testbeds) ..."):
        for task in selected:
            bench.envs.get(task, backend=sandbox)
    logs = log_dir or Path(tempfile.mkdtemp(prefix="hgm-validate-swe-"))
    checks, wall = validate_with_progress(2 * len(selected), lambda done: run_validation(
        selected, sandbox=box, envs=bench.envs, log_dir=logs, timeout_s=timeout, jobs=jobs, on_done=done))
    table = Table(title=f"swe-bench validation ({literal(bench.dataset)}, sandbox {sandbox}, workers {jobs}): "
                        f"wall {wall:.0f} s")
    for col in ("repository", "tasks", "gold solved", "bases unsolved", "unexpected", "test s (sum)", "slowest"):
        table.add_column(col, justify="left" if col in ("repository", "slowest") else "right")
    for r in summarize(checks):
        table.add_row(r.repo, str(r.tasks), str(r.gold_solved), str(r.empty_unsolved),
                      f"[red]{r.unexpected}[/]" if r.unexpected else "0", f"{r.test_s:.0f}",
                      f"{r.slowest[1]} {r.slowest[0]:.1f} s")
    result_console().print(table)
    exit_on_unexpected(checks, logs)
