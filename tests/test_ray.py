"""The ray executor on a local multi-node Ray cluster on loopback (head without slots, two worker
nodes with one sandbox slot each): `hgm run --executor ray` keeps the local executor's invariants;
lost nodes and workers, deadlines and duplicate results; the head SIGKILLed then resumed; no API
key reaches a worker node's sandboxes through the relay."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before Ray is imported: keep every Ray listener on loopback, and quiet (../shared/ray-notes.md).
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip(
    "ray", reason="the ray executor's tests need `pip install 'hgm[ray]'` (scripts/install.sh --dev)"
)
from ray.cluster_utils import Cluster  # noqa: E402
from test_run_e2e import TASKS, hgm  # noqa: E402

from hgm.archive import Archive  # noqa: E402
from hgm.config import SearchConfig, load_config  # noqa: E402
from hgm.domain import DispatchState, EvalStatus, ExpansionStatus, JobKind, MetaKey  # noqa: E402
from hgm.executors import Delivery  # noqa: E402
from hgm.executors.ray import SLOT, RayExecutor  # noqa: E402
from hgm.search import Search  # noqa: E402
from hgm.simulate import sleep_job  # noqa: E402
from hgm.store import RunStore  # noqa: E402

from llm_scripts import write_scripts  # noqa: E402

pytestmark = pytest.mark.slow
COUNTED = (EvalStatus.SOLVED, EvalStatus.FAILED, EvalStatus.EMPTY_PATCH)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Our own cluster: every listener on 127.0.0.1, no dashboard, no usage stats; shut down at the end."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1",
                                                       "include_dashboard": False})
    c.worker_nodes_started = [add_worker(c) for _ in range(2)]  # type: ignore[attr-defined]
    c.wait_for_nodes()
    assert c.address.startswith("127.0.0.1:"), f"the cluster is not on loopback: {c.address}"
    print("RAY CLUSTER", c.address, [n.node_ip_address for n in c.worker_nodes])
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def add_worker(c: Cluster):
    return c.add_node(num_cpus=1, resources={SLOT: 1}, node_ip_address="127.0.0.1")


def children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return out


def ray_pids(c: Cluster, node=None) -> set[int]:
    """The cluster's processes (of one node, if given), their workers included."""
    tree, todo = children(), []
    for n in [node] if node is not None else [c.head_node, *c.worker_nodes]:
        for procs in n.all_processes.values():
            todo += [p.process.pid for p in procs]
    pids: set[int] = set()
    while todo:
        pid = todo.pop()
        if pid not in pids:
            pids.add(pid)
            todo += tree.get(pid, [])
    return pids


def test_every_listener_of_the_cluster_is_on_loopback(cluster: Cluster) -> None:
    ray.init(address=cluster.address, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    try:  # a worker process per node too: it listens as well
        ray.get([ray.remote(lambda: os.getpid()).options(resources={SLOT: 1}, num_cpus=0).remote() for _ in range(2)])
        ours = ray_pids(cluster)
        lines = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout.splitlines()
    finally:
        ray.shutdown()
    mine = [ln for ln in lines if any(f"pid={p}," in ln for p in ours)]
    assert len({ln.split("pid=")[1].split(",")[0] for ln in mine}) >= 4, "ss shows the cluster's listeners"
    loopback = ("127.0.0.1:", "[::ffff:127.0.0.1]:")
    assert all(ln.split()[3].startswith(loopback) for ln in mine), "\n".join(mine)


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[Path]]:
    """Run directories of `hgm run`s on the cluster; their node caches are removed afterwards."""
    from hgm.paths import cache_dir

    made: list[Path] = []
    yield made
    for run in made:
        if (run / "run.sqlite").exists():
            with RunStore.open(run, readonly=True) as s:
                run_id = s.get_meta(MetaKey.RUN_ID)
            if run_id:
                shutil.rmtree(cache_dir() / "cluster" / run_id, ignore_errors=True)


def check_run(run: Path, budget: int) -> RunStore:
    """The invariants of test_run_e2e: budget met exactly, no pair counted twice, every node's commit
    in the archive under its branch, show-tree equal to the store, every dispatch closed."""
    store = RunStore.open(run, readonly=True)
    evals = [e for e in store.evaluations() if e.status in COUNTED]
    assert len(evals) == budget
    assert len({(e.node_id, e.task_id) for e in evals}) == len(evals)
    archive = Archive.open(run / "archive")
    nodes = store.nodes()
    assert len(nodes) >= 2
    for n in nodes:
        assert archive.resolve(f"node-{n.id}") == n.commit
    for x in store.expansions():
        if x.status == ExpansionStatus.COMMITTED:
            assert archive.resolve(f"refs/hgm/expansions/{x.id}") == x.commit
            assert (run / x.log_dir / "validation.txt").is_file(), "the worker's logs came home"
    for e in evals:
        assert (run / e.log_dir / "agent" / "chat.md").is_file()
    shown = json.loads(hgm("show-tree", str(run), "--format", "json").stdout)
    for row in shown:
        own = [e for e in evals if e.node_id == row["id"]]
        assert (row["evaluated"], row["solved"]) == (len(own), sum(e.status == EvalStatus.SOLVED for e in own))
    assert shown[0]["clade_evaluated"] == budget
    assert all(d.state != DispatchState.OPEN for d in store.dispatches())
    return store


def run_args(run: Path, models: dict[str, str], polyglot: Path, cluster: Cluster, budget: int) -> list[str]:
    return ["run", "--tasks", TASKS, "--from", str(polyglot), "--sandbox", "bwrap", "--executor", "ray",
            "--ray-address", cluster.address, "--downstream-llm", models["downstream"],
            "--self-improve-llm", models["self_improve"], "--diagnose-llm", models["diagnose"],
            "--max-task-evals", str(budget), "--initial-evals", "2", "--seed", "1", "--run-dir", str(run),
            "--set", "search.initial_expansions=1", "--set", "sandbox.agent_timeout_s=240", "--workers", "2"]


def test_hgm_run_on_ray_grows_a_tree_with_the_local_invariants(tmp_path: Path, polyglot_path: Path,
                                                               cluster: Cluster, runs: list[Path]) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    runs.append(run)
    done = hgm(*run_args(run, models, polyglot_path, cluster, budget=6))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final agent: node" in done.stderr
    store = check_run(run, 6)
    assert store.llm.usage(role="diagnose").calls >= 1 and store.llm.usage(role="downstream").calls >= 6
    log = (run / "run.log").read_text()
    assert "ray executor: 2 worker slots" in log and "gateway relay on http://127.0.0.1:" in log


# -- the scheduler over Ray, with synthetic jobs (hgm.simulate.sleep_job) and the SQLite store ----


@pytest.fixture
def driver(cluster: Cluster) -> Iterator[None]:
    ray.init(address=cluster.address, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def sleep_search(tmp_path: Path, cluster: Cluster, delay: float, *, budget: int = 8, wrap=lambda ex: ex, **kw):
    store = RunStore.create(tmp_path / "run", load_config())
    store.add_node(None, "root")
    executor = RayExecutor(address=cluster.address, head_address="127.0.0.1", local_slots=0,
                           function=sleep_job).start(delay)
    config = SearchConfig(max_task_evals=budget, workers=2, initial_evals=2, initial_expansions=1,
                          max_consecutive_infra_errors=kw.pop("max_infra", 5))
    return store, Search(store, config, [f"t{i}" for i in range(6)], wrap(executor), **kw)


def check_exact(store: RunStore, budget: int) -> None:
    counted = [e for e in store.evaluations() if e.status in COUNTED]
    assert len(counted) == budget and len({(e.node_id, e.task_id) for e in counted}) == budget
    assert all(d.state != DispatchState.OPEN for d in store.dispatches())


class Twice:
    """Delivers every result of the real Ray executor twice."""

    def __init__(self, inner: RayExecutor) -> None:
        self.inner, self.name = inner, "twice"

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def wait(self, timeout: float | None) -> list[Delivery]:
        return [d for d in self.inner.wait(timeout) for _ in (1, 2)]


def test_the_same_result_delivered_twice_is_committed_once(tmp_path: Path, cluster: Cluster, driver: None) -> None:
    store, search = sleep_search(tmp_path, cluster, 0.2, wrap=Twice)
    assert search.run().evals_done == 8
    jobs = len(store.evaluations()) + len(store.expansions())
    assert search.dropped_results == jobs
    check_exact(store, 8)


def test_a_job_past_its_deadline_is_cancelled(tmp_path: Path, cluster: Cluster, driver: None) -> None:
    store, search = sleep_search(tmp_path, cluster, 600, deadlines={JobKind.EVAL: 3.0, JobKind.EXPAND: 3.0},
                                 max_infra=3)
    started = time.monotonic()
    with pytest.raises(Exception, match="3 infra errors in a row .*DeadlineExceeded"):
        search.run()
    assert time.monotonic() - started < 120
    rows = [*store.evaluations(), *store.expansions()]
    assert len(rows) >= 3 and all(r.error_type == "DeadlineExceeded" for r in rows)  # those in flight too
    # the cancelled tasks let go of their slots: a new task gets one at once
    quick = ray.remote(lambda: os.getpid()).options(resources={SLOT: 1}, num_cpus=0)
    assert ray.get([quick.remote(), quick.remote()], timeout=60)
    store.close()


def kill_when_running(
    cluster: Cluster, kill, timeout: float = 120, title: bytes = b"ray::sleep_job"
) -> threading.Thread:
    """In a thread: once a job runs on a worker node, `kill(node, pid)` it; `.killed` tells what."""

    def watch() -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for node in cluster.worker_nodes:
                for pid in ray_pids(cluster, node):
                    try:
                        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    except OSError:
                        continue
                    if cmdline.startswith(title):
                        kill(node, pid)
                        thread.killed = (node, pid)  # type: ignore[attr-defined]
                        return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.killed = None  # type: ignore[attr-defined]
    thread.start()
    return thread


def check_redone_once(store: RunStore, search: Search, budget: int) -> None:
    lost = [d for d in store.dispatches() if d.state == DispatchState.LOST]
    assert len(lost) >= 1 and search.redispatched == len(lost)
    for d in lost:
        again = [x for x in store.dispatches(d.kind) if x.row_id == d.row_id and x.attempt == d.attempt + 1]
        assert [x.state for x in again] == [DispatchState.DONE], "redone once, elsewhere or on a new worker"
    check_exact(store, budget)


def test_a_worker_process_killed_mid_job_is_redone(tmp_path: Path, cluster: Cluster, driver: None) -> None:
    store, search = sleep_search(tmp_path, cluster, 3.0)
    watcher = kill_when_running(cluster, lambda node, pid: os.kill(pid, signal.SIGKILL))
    result = search.run()
    assert watcher.killed is not None and result.completed and result.evals_done == 8
    check_redone_once(store, search, 8)
    assert any("WorkerCrashedError" in (d.reason or "") for d in store.dispatches())


def test_a_worker_node_killed_mid_job_is_redone_elsewhere(tmp_path: Path, cluster: Cluster, driver: None) -> None:
    store, search = sleep_search(tmp_path, cluster, 3.0)
    watcher = kill_when_running(cluster, lambda node, pid: cluster.remove_node(node, allow_graceful=False))
    try:
        result = search.run()
        assert watcher.killed is not None and result.completed and result.evals_done == 8
        check_redone_once(store, search, 8)
        assert len(cluster.worker_nodes) == 1, "the run finished on the node that was left"
    finally:
        cluster.worker_nodes_started.append(add_worker(cluster))  # type: ignore[attr-defined]
        cluster.wait_for_nodes()


def test_hgm_run_survives_a_worker_node_killed_mid_job(tmp_path: Path, polyglot_path: Path, cluster: Cluster,
                                                       runs: list[Path]) -> None:
    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    runs.append(run)
    watcher = kill_when_running(cluster, lambda node, pid: cluster.remove_node(node, allow_graceful=False),
                                timeout=300, title=b"ray::_run_on_worker")
    try:
        done = hgm(*run_args(run, models, polyglot_path, cluster, budget=5))
        assert done.returncode == 0, done.stderr[-3000:]
        assert watcher.killed is not None
        store = check_run(run, 5)  # budget exact, no pair twice, every node's commit home, show-tree = store
        lost = [d for d in store.dispatches() if d.state == DispatchState.LOST]
        assert len(lost) == 1, "the job on the dead node was lost once ..."
        again = [d for d in store.dispatches(lost[0].kind) if d.row_id == lost[0].row_id]
        assert [(d.attempt, d.state) for d in again] == [(1, DispatchState.LOST), (2, DispatchState.DONE)], \
            "... and redone once, on the node that was left"
        assert "dispatched again as attempt 2" in (run / "run.log").read_text()
    finally:
        cluster.worker_nodes_started.append(add_worker(cluster))  # type: ignore[attr-defined]
        cluster.wait_for_nodes()


# -- the head process killed, then resumed on the same cluster ---------------------------------


def test_head_sigkilled_mid_run_then_resumed_on_the_same_cluster(tmp_path: Path, polyglot_path: Path,
                                                                 cluster: Cluster, runs: list[Path]) -> None:
    from test_run_resume import finished

    models = write_scripts(tmp_path / "scripts", polyglot_path)
    run = tmp_path / "run"
    runs.append(run)
    proc = subprocess.Popen([sys.executable, "-m", "hgm.cli", *run_args(run, models, polyglot_path, cluster, 5)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "300"})
    end = time.monotonic() + 600
    while time.monotonic() < end:  # one result committed and a job in flight on the cluster
        evals, _ = finished(run)
        if any(e[3] in COUNTED for e in evals) and (run / "run.sqlite").exists():
            with RunStore.open(run, readonly=True) as s:
                if any(d.state == DispatchState.OPEN for d in s.dispatches()):
                    break
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.3)
    else:
        raise AssertionError("the run never had a result and a job in flight")
    time.sleep(1.0)
    proc.kill()  # SIGKILL: Ray ends the dead driver's tasks
    proc.communicate()
    before_evals, before_exps = finished(run)
    done = hgm("run", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    after_evals, after_exps = finished(run)
    assert set(before_evals) <= set(after_evals) and set(before_exps) <= set(after_exps), "nothing finished is lost"
    store = check_run(run, 5)
    interrupted = [d for d in store.dispatches() if d.state == DispatchState.INTERRUPTED]
    assert interrupted, "the jobs in flight were marked interrupted ..."
    rows = {(JobKind.EVAL, e.id): e.error_type for e in store.evaluations()} | \
        {(JobKind.EXPAND, x.id): x.error_type for x in store.expansions()}
    assert all(rows[(d.kind, d.row_id)] == "Interrupted" for d in interrupted), "... and re-decided, not resumed"
    assert "resuming run" in (run / "run.log").read_text()


# -- isolation over the relay ---------------------------------------------------------------------

REAL_KEY = "sk-FAKE-REAL-KEY-9d1ce0ffee42"


def test_no_api_key_reaches_a_worker_nodes_sandboxes(tmp_path: Path, polyglot_path: Path, cluster: Cluster,
                                                     driver: None) -> None:
    """The probes of test_agent_isolation, by the real agent in a bwrap sandbox on a worker node whose
    LLM traffic goes node relay -> head listener -> gateway (the only holder of the key)."""
    from hgm.archive import init_archive
    from hgm.executors import JobKey
    from hgm.executors.ray import WorkerSpec
    from hgm.jobs import EvalJob
    from hgm.llm.gateway import Gateway
    from hgm.llm.relay import RelayListener
    from hgm.llm.scripted import ScriptedServer
    from hgm.paths import cache_dir
    from hgm.worker import unpack_logs

    def bash(command: str) -> dict:
        return {"tool_calls": [{"name": "bash", "arguments": {"command": command, "timeout_s": 280}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10}}

    def hidden(text: str) -> str:  # a pattern assembled at run time: the command never holds the secret
        return f"\"$(printf '%s' '{text[:6]}' '{text[6:]}')\""

    run_dir = tmp_path / "run"
    upstream = tmp_path / "upstream.json"
    server = None  # started once the steps (which name the relay's port) are known
    with_listener: list[RelayListener] = []
    probe = ("import socket\nfor addr in [('127.0.0.1', PORT), ('1.1.1.1', 443)]:\n    try:\n"
             "        socket.create_connection(addr, timeout=3); print('CON' + 'NECTED', addr)\n"
             "    except OSError as e:\n        print('BLO' + 'CKED', addr, e)\n")
    config = load_config(None, ["llm.backoff_initial_s=0", "llm.max_retries=0", "sandbox.agent_timeout_s=600",
                                f"benchmark.path={polyglot_path}"])
    store = RunStore.create(run_dir, config)
    archive, sha = init_archive(run_dir / "archive", Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial")
    node = store.add_node(None, sha, "initial")
    gateway = Gateway(tmp_path / "gw.sock", llm=config.llm, recorder=store.llm.record,
                      env={"HGM_API_KEY": REAL_KEY})  # the key exists on the head only, inside the gateway
    run_id = f"isolation-{os.getpid()}"
    try:
        with_listener.append(RelayListener(gateway, "127.0.0.1").start())
        listener = with_listener[0]
        steps = [
            bash("env; echo ENV-DONE"),
            bash("cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; echo PROC-DONE"),
            bash(f"timeout 250 grep -rIl --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr --exclude-dir=dev "
                 f"-e {hidden(REAL_KEY)} -e {hidden(listener.secret)} / 2>/dev/null | "
                 "sed \"s/^/$(printf 'LE%s' AK):/\"; echo GREP-DONE"),
            bash(f"python -c \"{probe.replace('PORT', str(listener.port))}\"; echo NET-DONE"),
            {"content": "Done."},
        ]
        upstream.write_text(json.dumps({"responses": steps}))
        server = ScriptedServer(upstream).start()
        config.llm.downstream = f"scripted-model@{server.base_url}"  # an upstream that needs HGM_API_KEY
        gateway.llm = config.llm
        gateway.start()
        spec = WorkerSpec(run_id, config.model_dump_json(), ("python__transpose",), listener.url, listener.secret)
        executor = RayExecutor(address=cluster.address, head_address="127.0.0.1", local_slots=0)
        executor.start(spec, archive.bundle)
        job = EvalJob(1, 1, node, sha, "python__transpose", "nodes/1/evals/probe")
        executor.submit(JobKey(JobKind.EVAL, 1, 1), job)
        deliveries: list[Delivery] = []
        end = time.monotonic() + 900
        while not deliveries and time.monotonic() < end:
            deliveries = executor.wait(5.0)
        assert deliveries and deliveries[0].result is not None, deliveries
        result = deliveries[0].result
        unpack_logs(result.logs, run_dir)
        # the key did reach the upstream, from the head's gateway ...
        assert any(r["headers"].get("authorization") == f"Bearer {REAL_KEY}" for r in server.requests)
    finally:
        if server is not None:
            server.stop()
        for listener in with_listener:
            listener.stop()
        gateway.stop()
        shutil.rmtree(cache_dir() / "cluster" / run_id, ignore_errors=True)
    chat = (run_dir / job.log_dir / "agent" / "chat.md").read_text()
    for marker in ("ENV-DONE", "PROC-DONE", "GREP-DONE", "NET-DONE"):
        assert marker in chat, f"the agent's command did not run: {marker}\n{chat[-3000:]}"
    assert "OPENAI_API_KEY=hgm-session-" in chat and "HGM_LLM_SOCKET=" in chat  # the sandbox holds a token only
    seen = chat + json.dumps([r["body"] for r in server.requests])
    seen += "".join(p.read_text(errors="replace") for p in (run_dir / job.log_dir).glob("agent_std*.txt"))
    assert REAL_KEY not in seen and listener.secret not in seen
    assert "LEAK:" not in chat, "no file the sandbox sees holds the key or the relay's secret"
    assert "CONNECTED" not in chat and chat.count("BLOCKED") == 2, "not even the head's relay port by TCP"
    usage = store.llm.usage(task_id="python__transpose")
    assert usage.calls == 5 and usage.prompt_tokens >= 400, "the head counted the node's calls"
    assert (usage.prompt_tokens, usage.completion_tokens) == (result.outcome.prompt_tokens,
                                                              result.outcome.completion_tokens)
    store.close()


def test_doctor_reports_the_cluster_and_node_prepare_reaches_every_node(cluster: Cluster, polyglot_path: Path) -> None:
    done = hgm("doctor", "--ray-address", cluster.address)
    out = " ".join(done.stdout.split())
    assert f"2 nodes with 2 sandbox slots at {cluster.address}" in out, done.stdout + done.stderr
    assert out.count("node 127.0.0.1 (1 slots)") == 2
    done = hgm("node", "prepare", "--ray-address", cluster.address, "--from", str(polyglot_path))
    assert done.returncode == 0, done.stderr[-3000:]
    err = " ".join(done.stderr.split())
    assert err.count("node 127.0.0.1 (1 slots)") == 2 and err.count("seed agent's virtualenv ready") == 2
    assert err.count("polyglot test dependencies ready") == 2
