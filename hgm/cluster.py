"""Worker nodes of a Ray cluster: prepare one (`hgm node prepare`) and report them all (`hgm doctor
--ray-address`). See docs/cluster.md.

A node runs jobs with what it has on disk: the toolchains (scripts/install_toolchains.sh, as root),
the benchmark tree with its prepared test dependencies, and the seed agent's virtualenv. Preparing
runs `PREPARE_STEPS` in order (each benchmark entry's node step, i.e. Polyglot's test dependencies,
then the seed agent's venv); SWE-bench's entry has no such step: `hgm benchmark fetch swe-bench` on
each node gets its instance images. The report runs `node_findings` on every node that offers
sandbox slots, pinned to that node, and names what each one is missing (the benchmarks' doctor
checks; only required ones count).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hgm.doctor import Finding
from hgm.paths import INITIAL_AGENT


def prepare_seed_agent(benchmark_path: Path | None) -> str:
    from hgm.agent_runtime import agent_venv

    return f"seed agent's virtualenv ready: {agent_venv(INITIAL_AGENT)}"


def _benchmark_steps() -> list[Callable[[Path | None], str]]:
    from hgm.benchmarks.registry import BENCHMARKS

    return [b.prepare_node for b in BENCHMARKS.values() if b.prepare_node is not None]


PREPARE_STEPS: list[Callable[[Path | None], str]] = [*_benchmark_steps(), prepare_seed_agent]
"""What `hgm node prepare` does on a node, in order; each step returns a line saying what it did."""


def prepare_node(benchmark_path: Path | None) -> list[str]:
    """Run the preparation steps on this machine; problems that need root come back as findings."""
    out = [step(benchmark_path) for step in PREPARE_STEPS]
    missing = [f for f in node_findings(benchmark_path) if not f.ok and not f.optional]
    out += [f"still missing: {f.area}: {f.what} (fix: {f.fix})" for f in missing]
    return out


def node_findings(benchmark_path: Path | None = None) -> list[Finding]:
    """What this machine has and lacks for running jobs (the doctor's checks plus the seed agent's venv)."""
    from hgm.agent_runtime import venv_dir
    from hgm.benchmarks.registry import BENCHMARKS
    from hgm.doctor import check_sandbox

    venv = venv_dir(INITIAL_AGENT)
    ready = (venv / "bin" / "python").exists()
    seed = Finding("seed agent venv", ready, str(venv) if ready else "not built", "" if ready else "hgm node prepare")
    benchmarks = [finding for b in BENCHMARKS.values() for finding in b.doctor(benchmark_path)]
    return [*check_sandbox(), *benchmarks, seed]


def _on_node(function: Callable[..., Any], *args: Any) -> Callable[[str], Any]:
    """A Ray task pinned to one node (by node id) that runs function(*args) there."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(function)

    def run(node_id: str) -> Any:
        strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
        return remote.options(scheduling_strategy=strategy, num_cpus=0, max_retries=0).remote(*args)

    return run


def cluster_report(address: str, benchmark_path: Path | None = None, *,
                   prepare: bool = False) -> list[tuple[str, float, list[Any]]]:
    """(node address, sandbox slots, findings or preparation lines) for every node with slots."""
    import ray

    from hgm.errors import UserError
    from hgm.executors.ray import SLOT

    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except ConnectionError as e:
            raise UserError(f"cannot join the Ray cluster at {address} ({e}); is `ray start --head` running there?") \
                from None
    try:
        alive = ray.nodes()  # type: ignore[no-untyped-call]  # ray.nodes() has no annotations
        nodes = [n for n in alive if n["Alive"] and n["Resources"].get(SLOT, 0) > 0]
        work = prepare_node if prepare else node_findings
        refs = [_on_node(work, benchmark_path)(n["NodeID"]) for n in nodes]
        return [(n["NodeManagerAddress"], n["Resources"][SLOT], ray.get(ref, timeout=3600))
                for n, ref in zip(nodes, refs, strict=True)]
    finally:
        if started:
            ray.shutdown()


def cluster_findings(address: str) -> list[Finding]:
    """`hgm doctor --ray-address`: the cluster's nodes, their slots and what each lacks."""
    from hgm.errors import UserError
    from hgm.executors.ray import SLOT

    try:
        report = cluster_report(address)
    except UserError as e:
        return [Finding("ray cluster", False, str(e)[:300], "docs/cluster.md: start the cluster")]
    total = sum(slots for _, slots, _ in report)
    out = [Finding("ray cluster", bool(report), f"{len(report)} nodes with {total:g} sandbox slots at {address}",
                   "" if report else f"start worker nodes with --resources='{{\"{SLOT}\": N}}' (docs/cluster.md)")]
    for ip, slots, findings in report:
        bad = [f for f in findings if not f.ok and not f.optional]
        out.append(Finding(f"node {ip} ({slots:g} slots)", not bad, "ready" if not bad else
                           "missing: " + "; ".join(f"{f.area}: {f.what}" for f in bad),
                           "; ".join(sorted({f.fix for f in bad if f.fix}))))
    return out


__all__ = ["PREPARE_STEPS", "cluster_findings", "cluster_report", "node_findings", "prepare_node"]
