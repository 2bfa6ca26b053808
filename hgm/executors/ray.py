"""The ray executor: every job a Ray core task that holds one sandbox slot of a worker node.

Cluster: the nodes that run jobs declare their sandbox slots as a custom resource
(`ray start --address=HEAD:6379 --resources='{"hgm_slot": 4}'`); a job asks for one slot and no
CPU, so the slots alone decide how many jobs a node runs. `slots()` is the cluster's total.

Failure handling belongs to the scheduler: Ray's own retries are off (`max_retries=0`, no
`retry_exceptions`, so a side effect such as an LLM call never happens twice behind its back). A
task whose worker process or node died comes back as `Delivery.lost` and the scheduler dispatches
the job again; Ray has no per-task timeout, so the scheduler's deadline calls `cancel`
(`ray.cancel(force=True)`). If the `hgm run` process (the driver) dies, Ray ends its tasks; the
resumed run re-decides them.

A worker process builds one `Workbench` per run (`_workbench`): the node's archive cache under
cache_dir()/cluster/<run id>/ (one bare git repository per node, filled with bundles by commit:
a job carries a reference to its agent's bundle in Ray's object store, fetched only when the
node lacks that commit), a local relay for the LLM gateway (hgm/llm/relay.py) and a scratch
directory for logs, which go back to the head inside the result with the rewrite's bundle.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgm.archive import Archive
from hgm.errors import UserError, error_type_of
from hgm.executors import Delivery, JobKey
from hgm.jobs import Job, JobResult
from hgm.paths import cache_dir

SLOT = "hgm_slot"
"""The custom Ray resource: sandbox slots of a worker node."""
log = logging.getLogger("hgm.run.ray")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("the ray executor needs Ray: pip install 'hgm[ray]' (on the head and on every worker "
                        "node)") from None
    return ray


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker needs to build its Workbench for this run (sent once, through Ray)."""

    run_id: str
    config_json: str
    task_ids: tuple[str, ...]
    relay_url: str
    relay_secret: str


class RayExecutor:
    name = "ray"

    def __init__(self, *, address: str | None, head_address: str | None, local_slots: int,
                 function: Callable[[Any, Any, list[Any]], Any] | None = None) -> None:
        """Join the cluster at `address`, or start a one-machine Ray with `local_slots` slots.
        `head_address`: this machine's address as the nodes reach it (None: Ray's choice). Each job
        runs as `function(spec, job, [bundle ref])` on a worker (default: a real job; see `start`)."""
        ray = self._ray = _ray()
        self._started = not ray.is_initialized()
        if self._started:
            common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if head_address:
                common["_node_ip_address"] = head_address
            try:
                if address:
                    ray.init(address=address, **common)
                else:
                    ray.init(num_cpus=local_slots, resources={SLOT: local_slots}, **common)
            except ConnectionError as e:
                raise UserError(f"cannot join the Ray cluster at {address} ({e}); start it with `ray start --head` "
                                "(docs/cluster.md) or fix executor.ray_address / --ray-address") from None
        self.node_ip: str = head_address or ray.util.get_node_ip_address()
        """This machine's address in the cluster (where the gateway relay listens)."""
        self._task = ray.remote(function or _run_on_worker).options(num_cpus=0, resources={SLOT: 1}, max_retries=0)
        self._spec: Any = None
        self._bundle: Callable[[str], bytes] | None = None
        self._bundles: dict[str, Any] = {}  # commit -> ObjectRef of its bundle
        self._refs: dict[Any, JobKey] = {}
        self._by_key: dict[JobKey, Any] = {}
        self._slots, self._slots_at = 0, 0.0
        self.address = address or "a one-machine Ray instance"
        if self.slots() == 0:
            self.close()
            raise UserError(f"the Ray cluster at {self.address} has no worker slots (custom resource {SLOT!r}); "
                            f"start worker nodes with `ray start --address=... --resources='{{\"{SLOT}\": N}}'` "
                            "(docs/cluster.md)")

    def start(self, spec: object, bundle: Callable[[str], bytes] | None = None) -> RayExecutor:
        """What every job gets first (a `WorkerSpec`), and how to bundle an agent's commit for a node."""
        self._spec, self._bundle = self._ray.put(spec), bundle
        return self

    def slots(self) -> int:
        if time.monotonic() - self._slots_at > 1.0:  # nodes join and leave
            self._slots = int(self._ray.cluster_resources().get(SLOT, 0))
            self._slots_at = time.monotonic()
        return self._slots

    def submit(self, key: JobKey, job: object) -> None:
        assert self._spec is not None, "start(spec) first"
        commit = getattr(job, "commit", None)
        if commit is not None and self._bundle is not None and commit not in self._bundles:
            self._bundles[commit] = self._ray.put(self._bundle(commit))
        # The bundle's ref travels inside a list, so Ray does not fetch it unless the node lacks the commit.
        ref = self._task.remote(self._spec, job, [self._bundles[commit]] if commit in self._bundles else [])
        self._refs[ref], self._by_key[key] = key, ref

    def wait(self, timeout: float | None) -> list[Delivery]:
        if not self._refs:
            time.sleep(timeout or 0)
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self._ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        return [self._delivery(ref) for ref in ready]

    def _delivery(self, ref: Any) -> Delivery:
        ex = self._ray.exceptions
        key = self._refs.pop(ref)
        self._by_key.pop(key, None)
        try:
            return Delivery(key, result=self._ray.get(ref))
        except (ex.WorkerCrashedError, ex.NodeDiedError, ex.ObjectLostError, ex.OwnerDiedError,
                ex.LocalRayletDiedError, ex.OutOfMemoryError, ex.TaskUnschedulableError) as e:
            return Delivery(key, lost=f"{type(e).__name__}: {e}"[:2000])
        except ex.RayTaskError as e:
            cause = getattr(e, "cause", None)
            return Delivery(key, error=(error_type_of(cause if isinstance(cause, BaseException) else e), str(e)))

    def cancel(self, key: JobKey) -> None:
        ref = self._by_key.pop(key, None)
        if ref is not None:
            self._refs.pop(ref, None)
            self._ray.cancel(ref, force=True)

    def close(self) -> None:
        for ref in list(self._refs):
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        self._by_key.clear()
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()


# -- the worker's side ---------------------------------------------------------------------------

_benches: dict[WorkerSpec, Any] = {}
_benches_lock = threading.Lock()


def _run_on_worker(spec: WorkerSpec, job: Job, bundle_refs: list[Any]) -> JobResult:
    from hgm.worker import run_job

    bench = _workbench(spec)
    if not bench.archive.has_commit(job.commit):
        with _node_lock(bench.archive.path):  # one import per commit and node, however many slots it has
            if not bench.archive.has_commit(job.commit):
                bench.archive.import_bundle(_ray().get(bundle_refs[0]))
                bench.archive.set_ref(f"refs/hgm/cache/{job.commit}", job.commit)
    try:
        return run_job(bench, job)
    finally:
        shutil.rmtree(bench.log_root / job.log_dir, ignore_errors=True)  # it travelled in the result


def _workbench(spec: WorkerSpec) -> Any:
    """This worker process's Workbench for the run (built on its first job)."""
    with _benches_lock:
        if spec not in _benches:
            _benches[spec] = _build_workbench(spec)
        return _benches[spec]


def _build_workbench(spec: WorkerSpec) -> Any:
    from hgm.benchmarks import get_benchmark
    from hgm.config import HGMConfig
    from hgm.llm.relay import GatewayClient, LocalRelay
    from hgm.sandbox import get_sandbox
    from hgm.worker import Workbench

    config = HGMConfig.model_validate_json(spec.config_json)
    benchmark = get_benchmark(config.benchmark)
    tasks = {t: benchmark.task(t) for t in spec.task_ids}
    sandbox = get_sandbox(config.sandbox.backend, config.sandbox)
    node_dir = cache_dir() / "cluster" / spec.run_id
    (node_dir / "agents").mkdir(parents=True, exist_ok=True)
    relay = LocalRelay(spec.relay_url, spec.relay_secret, timeout_s=config.llm.request_worst_case_s + 60).start()
    scratch = Path(tempfile.mkdtemp(prefix="hgm-job-logs-"))
    return Workbench(config, benchmark, tasks, sandbox, GatewayClient(spec.relay_url, spec.relay_secret, relay),
                     node_archive(node_dir / "archive"), node_dir / "agents", scratch, remote=True)


def node_archive(path: Path) -> Archive:
    """The node's archive cache, created once by whichever worker process comes first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _node_lock(path):
        return Archive.open(path) if (path / "HEAD").exists() else Archive.create(path)


@contextmanager
def _node_lock(archive: Path) -> Iterator[None]:
    """Held by one worker process of the node at a time."""
    with open(archive.parent / "archive.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


__all__ = ["SLOT", "RayExecutor", "WorkerSpec", "node_archive"]
