"""The worker's side of a job: what a worker holds (`Workbench`) and `run_job`, which runs one.

The local executor calls `run_job` in a thread of `hgm run` with the run's own archive, run
directory and central gateway (`remote=False`: logs and commits are already where the head reads
them). A Ray worker builds a `Workbench` of its own (hgm/executors/ray.py): a node-local archive
cache fed by bundles, a scratch directory for logs and a gateway client over the node's relay
(`remote=True`: the result carries the logs and the rewrite's commit back).
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from hgm.archive import Archive
from hgm.benchmarks import Benchmark, Task
from hgm.config import HGMConfig
from hgm.evaluate import evaluate
from hgm.expand import Expander
from hgm.jobs import EvalJob, ExpandJob, GatewayAccess, Job, JobResult
from hgm.sandbox import Sandbox


@dataclass
class Workbench:
    config: HGMConfig
    benchmark: Benchmark
    tasks: dict[str, Task]
    sandbox: Sandbox
    gateway: GatewayAccess
    archive: Archive
    """Agents' code by commit (the run's archive, or a node's cache that bundles fill)."""
    agent_cache: Path
    """Checked-out agents, shared by the jobs of this worker."""
    log_root: Path
    """Job log directories are relative to this (the run directory, or a scratch directory)."""
    remote: bool = False
    """The head shares neither log_root nor the archive: results carry logs and bundles."""


def run_job(bench: Workbench, job: Job) -> JobResult:
    """Run one job; its failures are data in the outcome (the boundaries are evaluate() and
    Expander.expand); what escapes is a bug or a broken worker, booked infra_error by the scheduler."""
    if isinstance(job, EvalJob):
        return _evaluate(bench, job)
    assert isinstance(job, ExpandJob), f"not a job: {job!r}"
    expander = Expander(bench.log_root, bench.archive, bench.gateway, bench.sandbox, bench.config, bench.tasks,
                        bench.agent_cache)
    outcome, attempt = expander.expand(job)
    bundle = bench.archive.bundle(attempt, since=job.commit) if bench.remote and attempt else None
    return JobResult(outcome, attempt, bundle, _logs(bench, job.log_dir))


def _evaluate(bench: Workbench, job: EvalJob) -> JobResult:
    agent = bench.archive.checkout(job.commit, bench.agent_cache)
    report = evaluate(agent, bench.tasks[job.task_id], benchmark=bench.benchmark, gateway=bench.gateway,
                      sandbox=bench.sandbox, config=bench.config, log_dir=bench.log_root / job.log_dir,
                      run_dir=bench.log_root, node_id=job.node_id)
    return JobResult(report.outcome, logs=_logs(bench, job.log_dir))


def _logs(bench: Workbench, log_dir: str) -> bytes | None:
    if not bench.remote:
        return None
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        tar.add(bench.log_root / log_dir, arcname=log_dir)
    return data.getvalue()


def unpack_logs(data: bytes, run_dir: Path) -> None:
    """Extract a result's logs under the run directory (only plain files and directories)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(run_dir, filter="data")


__all__ = ["Workbench", "run_job", "unpack_logs"]
