"""The docker backend beyond the shared conformance suite: engine discovery, cleanup, the image.

Tests marked `docker` need a Docker Engine API (Docker, or Podman per scripts/setup_podman.sh,
found with no DOCKER_HOST) and the evaluation image (`hgm docker build`); they skip naming what is
absent (fail on CI, which sets both up). The stream parser tests need nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import venv

import pytest

from hgm.errors import SandboxUnavailable
from hgm.sandbox import Mount
from hgm.sandbox._docker_stream import Demux

from engines import missing_engine

# --- the attach-stream parser (no engine needed) ----------------------------------------------


def frame(kind: int, payload: bytes) -> bytes:
    return bytes([kind, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_demux_splits_streams_across_any_chunking():
    data = frame(1, b"hello ") + frame(2, b"oops\n") + frame(1, b"") + frame(1, b"world\n") + frame(3, b"engine\n")
    for size in (1, 3, 7, 8, 9, len(data)):
        d = Demux(output_bytes=100)
        for i in range(0, len(data), size):
            d.feed(memoryview(data[i : i + size]))
        assert (d.stdout.text(), d.stderr.text()) == ("hello world\n", "oops\nengine\n")
        assert not d.stdout.truncated and not d.stderr.truncated


def test_demux_keeps_the_first_bytes_per_stream_and_marks_truncation():
    d = Demux(output_bytes=10)
    d.feed(memoryview(frame(1, b"0123456789abcdef") + frame(2, b"short") + frame(1, b"more")))
    assert d.stdout.text() == "0123456789" and d.stdout.truncated
    assert d.stderr.text() == "short" and not d.stderr.truncated


# --- engine discovery -------------------------------------------------------------------------


def test_no_engine_is_unavailable_with_the_fix(monkeypatch, tmp_path):
    from hgm.sandbox import get_sandbox

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(SandboxUnavailable) as e:
        get_sandbox("docker")
    message = str(e.value)
    assert "nothing.sock" in message and "setup_podman.sh" in message and "DOCKER_HOST" in message


def listening(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen()
    return s


def test_discovery_takes_the_first_socket_that_answers_and_explicit_docker_host_wins(monkeypatch, tmp_path):
    from hgm.sandbox.docker import find_engine

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    stale, live, later = tmp_path / "stale.sock", tmp_path / "live.sock", tmp_path / "later.sock"
    listening(stale).close()  # the socket file of a service that is gone: refuses connections
    with listening(live), listening(later):
        absent = tmp_path / "absent.sock"
        assert find_engine([absent, stale, live, later]) == (f"unix://{live}", "found, DOCKER_HOST unset")
        monkeypatch.setenv("DOCKER_HOST", "tcp://10.1.2.3:2375")
        assert find_engine([live]) == ("tcp://10.1.2.3:2375", "from DOCKER_HOST")
    monkeypatch.delenv("DOCKER_HOST")
    url, how = find_engine([absent, stale])
    assert url is None and str(absent) in how and str(stale) in how


def test_the_candidates_are_the_usual_rootful_then_rootless_sockets(monkeypatch, tmp_path):
    from hgm.sandbox.docker import socket_candidates

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert [str(p) for p in socket_candidates()] == [
        "/var/run/docker.sock", "/run/podman/podman.sock", "/run/podman.sock",
        f"{tmp_path}/podman/podman.sock", f"/run/user/{os.getuid()}/podman/podman.sock"]


@pytest.mark.docker
def test_hgm_finds_this_machines_engine_with_no_docker_host(monkeypatch):
    """What scripts/install.sh leaves (Podman's service at /run/podman.sock) works with no export."""
    from hgm.sandbox.docker import connect, find_engine

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    try:
        client = connect(timeout=10)
    except SandboxUnavailable as e:
        missing_engine(f"no Docker engine here: {e}")
    assert client.ping() and find_engine()[0].startswith("unix://")
    doctor = subprocess.run([sys.executable, "-m", "hgm.cli", "doctor"], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "DOCKER_HOST"} | {"COLUMNS": "300"})
    assert f"at {find_engine()[0]} (found, DOCKER_HOST unset)" in doctor.stdout + doctor.stderr, doctor.stdout


# --- against a real engine --------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    from hgm.sandbox.docker import connect

    try:
        return connect()
    except SandboxUnavailable as e:
        missing_engine(f"no Docker engine here: {e}")


@pytest.fixture(scope="module")
def sandbox(client):
    from hgm.sandbox.docker import DockerSandbox

    try:
        return DockerSandbox(client=client, run_id="test-docker")
    except SandboxUnavailable as e:
        missing_engine(f"evaluation image absent: {e}")


def hgm_containers(client, run_id: str = "test-docker") -> list[str]:
    return [c["Id"] for c in client.api.containers(all=True, filters={"label": f"hgm.run={run_id}"})]


@pytest.mark.docker
def test_missing_image_says_how_to_build_it(client):
    from hgm.sandbox.docker import DockerSandbox

    with pytest.raises(SandboxUnavailable, match="hgm docker build"):
        DockerSandbox(client=client, image="hgm-eval:no-such-tag")


@pytest.mark.docker
def test_containers_are_removed_after_success_failure_and_timeout(sandbox, client, tmp_path):
    assert sandbox.exec(["true"], cwd="/", timeout=30).ok
    assert sandbox.exec(["sh", "-c", "exit 7"], cwd="/", timeout=30).returncode == 7
    assert sandbox.exec(["sleep", "60"], cwd="/", timeout=1).timed_out
    assert hgm_containers(client) == []


@pytest.mark.docker
def test_ctrl_c_during_exec_removes_the_container(sandbox, client):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT is delivered to the main thread only")
    seen: list[list[str]] = []

    def interrupt() -> None:
        deadline = time.monotonic() + 20
        while not (running := hgm_containers(client)) and time.monotonic() < deadline:
            time.sleep(0.1)
        seen.append(running)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        sandbox.exec(["sleep", "60"], cwd="/", timeout=60)
    assert seen and seen[0], "the container never appeared"
    assert hgm_containers(client) == []


@pytest.mark.docker
def test_doctor_clean_removes_leftovers_of_dead_harnesses_only(sandbox, client):
    from hgm.sandbox.docker import leftover_containers, remove_leftovers

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = dead.stdout.strip()
    labels = {**sandbox.labels, "hgm.run": "test-leftover"}
    for name, pid in (("hgm-test-leftover-dead", dead_pid), ("hgm-test-leftover-live", str(os.getpid()))):
        client.api.create_container(sandbox.image, command=["true"], name=name, labels={**labels, "hgm.pid": pid})
    try:
        found = {name: alive for name, run, alive in leftover_containers(client) if run == "test-leftover"}
        assert found == {"hgm-test-leftover-dead": False, "hgm-test-leftover-live": True}
        removed = remove_leftovers(client)
        assert "hgm-test-leftover-dead" in removed and "hgm-test-leftover-live" not in removed
        assert hgm_containers(client, "test-leftover") == [client.api.inspect_container("hgm-test-leftover-live")["Id"]]
    finally:
        for c in hgm_containers(client, "test-leftover"):
            client.api.remove_container(c, force=True)


@pytest.mark.docker
def test_workspace_files_stay_usable_by_the_harness(sandbox, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    r = sandbox.exec(["sh", "-c", "mkdir -p sub && echo made > sub/f && chmod 500 sub"], cwd=str(ws), timeout=30,
                     mounts=[Mount(ws, str(ws), read_only=False)])  # fmt: skip
    assert r.ok, r
    made = ws / "sub" / "f"
    assert made.read_text() == "made\n" and made.stat().st_uid == os.getuid()


@pytest.mark.docker
def test_a_venv_built_by_the_harness_runs_inside(sandbox, tmp_path):
    venv.create(tmp_path / "venv", with_pip=False, symlinks=True)
    python = tmp_path / "venv" / "bin" / "python"
    r = sandbox.exec([str(python), "-c", "import sys; print(sys.prefix)"], cwd="/", timeout=30,
                     mounts=[Mount(tmp_path / "venv", str(tmp_path / "venv"))])  # fmt: skip
    assert r.ok, r
    assert r.stdout.strip() == str(tmp_path / "venv")


TOOLCHAIN_PROBES = {
    "python": (["/usr/bin/python3", "-m", "pytest", "--version"], "pytest"),
    "rust": (["cargo", "--version"], "cargo 1."),
    "javascript": (["sh", "-c", "node --version && npm --version"], "v20."),
    "go": (["go", "version"], "go1.2"),
    "java": (["sh", "-c", "javac -version 2>&1; ls /usr/share/java/junit-platform-console-standalone.jar"], "javac 17"),
    "cpp": (["sh", "-c", "g++ --version; cmake --version; ls /usr/include/boost/date_time.hpp"], "cmake version 3"),
}


@pytest.mark.docker
@pytest.mark.parametrize("language", sorted(TOOLCHAIN_PROBES))
def test_image_has_the_toolchains_it_declares(sandbox, language):
    if language not in sandbox.toolchains:
        pytest.skip(f"image {sandbox.image} was built without {language} (target ci)")
    argv, expected = TOOLCHAIN_PROBES[language]
    r = sandbox.exec(argv, cwd="/", timeout=60)
    assert r.ok and expected in r.stdout + r.stderr, r


@pytest.mark.docker
@pytest.mark.slow
def test_hgm_docker_build_streams_the_log(client, sandbox):
    """Rebuilding the image the tests use is a cache hit; the CLI shows the build log."""
    from typer.testing import CliRunner

    from hgm.cli import app

    labels = client.images.get(sandbox.image).labels or {}
    if "hgm.base" not in labels:
        pytest.skip(f"image {sandbox.image} predates the hgm.base label: a rebuild would not be a cache hit")
    target = "full" if "go" in sandbox.toolchains else "ci"
    args = ["docker", "build", "--tag", sandbox.image, "--target", target, "--base", labels["hgm.base"]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "STEP" in result.output or "Step" in result.output
    assert f"built {sandbox.image}" in result.output


def test_dockerfile_is_found_and_names_its_targets():
    from hgm.sandbox.docker_image import TARGETS, dockerfile_dir

    text = (dockerfile_dir() / "Dockerfile").read_text()
    assert "ARG BASE=python:3.12-slim-bookworm" in text
    for target in TARGETS:
        assert f" AS {target}\n" in text



@pytest.mark.docker
def test_hgm_doctor_clean_reports_the_engine_and_removes_a_leftover(sandbox, client):
    from typer.testing import CliRunner

    from hgm.cli import app

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    labels = {**sandbox.labels, "hgm.run": "test-doctor", "hgm.pid": dead.stdout.strip()}
    client.api.create_container(sandbox.image, command=["true"], name="hgm-test-doctor-dead", labels=labels)
    try:
        result = CliRunner().invoke(app, ["doctor", "--clean"])
        assert "removed" in result.output and "sandbox docker engine" in result.output, result.output
        assert hgm_containers(client, "test-doctor") == []
    finally:
        for c in hgm_containers(client, "test-doctor"):
            client.api.remove_container(c, force=True)
