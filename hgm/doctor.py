"""`hgm doctor`: what this machine is missing, and the exact fix for each.

`CHECKS` is a list of functions, each returning `Finding`s; anyone may append a check. With a
Ray cluster (`hgm doctor --ray-address ADDR`) the report adds the cluster: its nodes, their
sandbox slots and what each node lacks (hgm/cluster.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    area: str
    ok: bool
    what: str
    """Version found, or what is missing."""
    fix: str = ""
    optional: bool = False
    """Only an opt-in feature needs it (e.g. the docker backend): shown, but doctor does not fail."""


def check_sandbox() -> list[Finding]:
    from hgm.errors import SandboxUnavailable
    from hgm.sandbox import get_sandbox

    if shutil.which("bwrap") is None:
        return [Finding("sandbox bwrap", False, "bwrap not installed", "apt-get install -y bubblewrap")]
    try:
        get_sandbox("bwrap")
    except SandboxUnavailable as e:
        return [Finding("sandbox bwrap", False, "bwrap cannot start", str(e))]
    return [Finding("sandbox bwrap", True, "bwrap works")]


def check_docker() -> list[Finding]:
    """The docker backend: engine reachable, evaluation image present, no leftover containers."""
    from hgm.config import SandboxConfig
    from hgm.errors import SandboxUnavailable
    from hgm.sandbox.docker import ENGINE_FIX, connect, find_engine, image_present, leftover_containers

    try:
        client = connect(timeout=10)
    except SandboxUnavailable as e:
        return [Finding("sandbox docker engine", False, str(e).replace(ENGINE_FIX, "").strip(), ENGINE_FIX,
                        optional=True)]
    try:
        version = client.version()
        image = SandboxConfig().docker_image
        present = image_present(client, image)
        stale = [name for name, _, alive in leftover_containers(client) if not alive]
    except Exception as e:  # noqa: BLE001 - an engine that answers ping but fails later is a finding
        return [Finding("sandbox docker engine", False, f"engine error: {e}"[:200], ENGINE_FIX, optional=True)]
    engine = next((c["Name"] for c in version.get("Components") or []), "Docker Engine")
    url, how = find_engine()
    out = [Finding("sandbox docker engine", True, f"{engine} {version.get('Version', '?')} at {url} ({how})",
                   optional=True)]
    out.append(Finding("sandbox docker image", present, image if present else f"{image} not built",
                       "" if present else "hgm docker build (no registry: scripts/setup_podman.sh, then "
                       "hgm docker build --base localhost/debian:bookworm)", optional=True))  # fmt: skip
    out.append(Finding("sandbox docker leftovers", not stale, f"{len(stale)} containers of finished runs",
                       "hgm doctor --clean" if stale else "", optional=True))  # fmt: skip
    return out


def clean_docker() -> str:
    """Remove hgm-labelled containers left by harness processes that are gone; says what it did."""
    from hgm.errors import SandboxUnavailable
    from hgm.sandbox.docker import connect, leftover_containers, remove_leftovers

    try:
        client = connect(timeout=30)
    except SandboxUnavailable:
        return "no Docker engine answers: no containers to clean"
    removed = remove_leftovers(client)
    live = sum(alive for _, _, alive in leftover_containers(client))
    return f"removed {len(removed)} leftover hgm containers" + (f"; kept {live} of running harnesses" if live else "")


def installed_version(package: str) -> str | None:
    """The version of `package` when Python can import it (found on the path), else None."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    try:
        if find_spec(package) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown version"


def check_ray() -> list[Finding]:
    """The ray executor's package (optional: only `hgm run --executor ray` needs it)."""
    found = installed_version("ray")
    if found is None:
        return [Finding("executor ray", False, "ray not installed", "pip install 'hgm[ray]'", optional=True)]
    return [Finding("executor ray", True, f"ray {found}", optional=True)]


def check_benchmarks() -> list[Finding]:
    """Each registered benchmark's own checks (its entry's doctor)."""
    from hgm.benchmarks.registry import BENCHMARKS

    return [finding for bench in BENCHMARKS.values() for finding in bench.doctor(None)]


def check_llm_endpoints() -> list[Finding]:
    """Whether the configured models' endpoints can be reached (the preflight `hgm run` does: DNS,
    TCP, TLS, no request). Optional: a machine may be set up before it has network."""
    from concurrent.futures import ThreadPoolExecutor

    from hgm.config import load_config
    from hgm.errors import UserError
    from hgm.llm.preflight import endpoints, probe
    from hgm.llm.providers import ProviderTable

    llm = load_config().llm
    table = ProviderTable.load(llm.providers_file)
    try:
        routes = [table.resolve(name, llm.base_url) for name in dict.fromkeys((llm.downstream, llm.self_improve,
                                                                              llm.diagnose))]
    except UserError as e:
        return [Finding("llm models", False, str(e), "fix llm.* in your config (hgm llm models lists the names)",
                        optional=True)]
    todo = endpoints(routes)
    with ThreadPoolExecutor(max(1, len(todo))) as pool:
        causes = list(pool.map(probe, todo))
    return [Finding(f"llm endpoint {e.where}", cause is None,
                    f"reachable ({', '.join(e.models)})" if cause is None else cause,
                    "" if cause is None else "check the network and any proxy (HTTPS_PROXY), or point the models "
                    "at a server you can reach (--set llm.base_url=URL)", optional=True)
            for e, cause in zip(todo, causes, strict=True)]


CHECKS: list[Callable[[], list[Finding]]] = [check_sandbox, check_docker, check_benchmarks, check_ray,
                                             check_llm_endpoints]


def run_checks(ray_address: str | None = None) -> list[Finding]:
    findings = [finding for check in CHECKS for finding in check()]
    if ray_address:
        from hgm.cluster import cluster_findings

        findings += cluster_findings(ray_address)
    return findings
