"""One conformance suite for every sandbox backend, hostile programs included.

Add a backend by appending its name to BACKENDS_UNDER_TEST; a backend whose engine is absent
here (SandboxUnavailable) is skipped with the reason. `rootfs` is bwrap on an image's exported root
filesystem (SWE-bench's instance environments on bwrap), here a local instance's image; it starts
every command from that image's Env, which the environment test allows for. Properties that `none` documents it does
not provide are skipped for it with "none backend does not isolate".
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from hgm.errors import SandboxClosed, SandboxUnavailable, UserError
from hgm.sandbox import BACKENDS, Limits, Mount, get_sandbox

from engines import missing_engine

BACKENDS_UNDER_TEST = [
    "bwrap",
    "none",
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("bwrap-rlimit", marks=pytest.mark.slow),  # bwrap's fallback where cgroups are unusable
    pytest.param("rootfs", marks=pytest.mark.docker),  # the export needs an engine once
]
ROOTFS_TASK = "r1chardj0n3s__parse-1.22.3"
"""The local SWE-bench instance whose image's root filesystem the rootfs backend runs on."""
NOT_ISOLATED = "none backend does not isolate"


@pytest.fixture(scope="module", params=BACKENDS_UNDER_TEST)
def sandbox(request):
    """One sandbox per backend for the module; skipped, with the reason, where it cannot run."""
    try:
        if request.param == "bwrap-rlimit":
            from hgm.sandbox.bwrap import BwrapSandbox

            return BwrapSandbox(use_cgroups=False)
        if request.param == "rootfs":
            return _rootfs()
        return get_sandbox(request.param)
    except SandboxUnavailable as e:
        if request.param in ("docker", "rootfs"):
            missing_engine(f"docker unavailable here: {e}")
        pytest.skip(f"{request.param} unavailable here: {e}")


def _rootfs():
    from hgm.benchmarks.swe_bench import SWEBenchBenchmark
    from hgm.sandbox.rootfs import RootfsSandbox

    bench = SWEBenchBenchmark.open(str(Path(__file__).parent / "data" / "swe_bench"),
                                   build_base="localhost/debian:bookworm")
    env = bench.envs.get(bench.task(ROOTFS_TASK), backend="bwrap")
    assert env.rootfs is not None
    return RootfsSandbox(env.rootfs)


def image_env(sandbox) -> set[str]:
    """Names of the image Env a sandbox starts its commands from (rootfs), else none."""
    from hgm.sandbox.rootfs import RootfsSandbox

    return set(sandbox.image_config_env) if isinstance(sandbox, RootfsSandbox) else set()


def isolating(sandbox) -> None:
    if sandbox.name == "none":
        pytest.skip(NOT_ISOLATED)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace


def run(sandbox, ws: Path, argv, *, timeout=30.0, mounts=(), **kw):
    """exec with the workspace mounted read-write at its host path and used as cwd."""
    return sandbox.exec(
        argv, cwd=str(ws), timeout=timeout, mounts=[Mount(ws, str(ws), read_only=False), *mounts], **kw
    )


def py(code: str) -> list[str]:
    return ["python3", "-c", code]


# --- the contract -----------------------------------------------------------------------------


def test_cwd_env_stdin_and_workspace_are_honored(sandbox, ws):
    (ws / "in.txt").write_text("from host")
    r = run(
        sandbox, ws,
        py("import os,sys; print(os.getcwd()); print(os.environ['GREETING']); print(sys.stdin.read());"
           "print(open('in.txt').read()); open('out.txt','w').write('from sandbox')"),
        env={"GREETING": "hello"}, stdin="piped input",
    )  # fmt: skip
    assert r.ok, r
    assert r.stdout.splitlines() == [str(ws), "hello", "piped input", "from host"]
    assert (ws / "out.txt").read_text() == "from sandbox"
    assert not r.timed_out and not r.output_truncated


def test_nonzero_exit_is_a_result(sandbox, ws):
    r = run(sandbox, ws, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.returncode, r.stdout, r.stderr, r.ok) == (3, "out\n", "err\n", False)


def test_env_path_applies_inside_only(sandbox, ws):
    """A PATH in `env` is the command's; the backend's own helpers must not depend on it."""
    r = run(sandbox, ws, ["/bin/sh", "-c", 'echo "$PATH"; command -v ls || echo no-ls'], env={"PATH": "/nowhere"})
    assert r.ok, r
    assert r.stdout.split() == ["/nowhere", "no-ls"]


def test_missing_command_is_a_result(sandbox, ws):
    r = run(sandbox, ws, ["hgm-no-such-command", "--help"])
    assert r.returncode != 0 and not r.timed_out


def test_killed_by_signal_reports_128_plus_signal(sandbox, ws):
    assert run(sandbox, ws, ["sh", "-c", "kill -9 $$"]).returncode == 137


def test_environment_is_exactly_env_plus_defaults(sandbox, ws, monkeypatch):
    monkeypatch.setenv("HGM_TEST_SECRET", "sk-do-not-leak")
    r = run(sandbox, ws, py("import json, os; print(json.dumps(sorted(os.environ)))"), env={"MINE": "1"})
    assert r.ok, r
    names = set(json.loads(r.stdout))
    assert "HGM_TEST_SECRET" not in names and "MINE" in names
    assert names <= {"MINE", "PATH", "HOME", "LANG", "PWD", "LC_CTYPE", "SHLVL", "_"} | image_env(sandbox)


def test_harness_environment_not_readable_via_proc(sandbox, ws, monkeypatch):
    isolating(sandbox)
    monkeypatch.setenv("HGM_TEST_SECRET", "sk-do-not-leak")
    r = run(sandbox, ws, ["sh", "-c", "cat /proc/*/environ 2>/dev/null; ls /proc"])
    assert r.returncode == 0 and "sk-do-not-leak" not in r.stdout
    assert str(os.getpid()) not in r.stdout.split()  # own pid namespace: host processes unseen


def test_secrets_in_home_are_not_visible(sandbox, ws):
    isolating(sandbox)
    secret = Path.home() / f".hgm-test-credentials-{os.getpid()}"
    secret.write_text("sk-home-secret")
    try:
        r = run(sandbox, ws, ["sh", "-c", 'ls -a "$HOME" "$1"; cat "$1"', "sh", str(secret)])
    finally:
        secret.unlink()
    assert "sk-home-secret" not in r.stdout and secret.name not in r.stdout
    assert r.returncode != 0


def test_kernel_settings_cannot_be_changed(sandbox, ws):
    isolating(sandbox)
    r = run(sandbox, ws, ["sh", "-c", "echo 1 > /proc/sys/vm/drop_caches && echo WROTE"])
    assert r.returncode != 0 and "WROTE" not in r.stdout


def test_bwrap_drops_all_capabilities(ws):
    try:
        sandbox = get_sandbox("bwrap")
    except SandboxUnavailable as e:
        pytest.skip(str(e))
    r = run(sandbox, ws, ["grep", "CapEff", "/proc/self/status"])
    assert r.stdout.split() == ["CapEff:", "0000000000000000"]


def test_unix_socket_mounted_in_is_reachable(sandbox, ws, tmp_path):
    sock_path = tmp_path / "gw.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"pong:" + conn.recv(100))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    client = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/hgm/gw.sock');"
        "s.sendall(b'ping'); print(s.recv(100).decode())"
    )
    target = str(sock_path) if sandbox.name == "none" else "/run/hgm/gw.sock"
    r = run(sandbox, ws, py(client.replace("/run/hgm/gw.sock", target)), mounts=[Mount(sock_path, target)])
    server.close()
    assert r.ok, r
    assert r.stdout.strip() == "pong:ping"


def test_read_only_mount_is_read_only(sandbox, ws, tmp_path):
    isolating(sandbox)
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "data.txt").write_text("original")
    r = run(sandbox, ws, ["sh", "-c", "echo changed > /data/data.txt; touch /data/new"],
            mounts=[Mount(ro, "/data", read_only=True)])  # fmt: skip
    assert r.returncode != 0
    assert (ro / "data.txt").read_text() == "original" and not (ro / "new").exists()


def test_writes_outside_the_workspace_leave_no_trace(sandbox, ws, tmp_path):
    isolating(sandbox)
    outside = tmp_path / "outside"
    outside.mkdir()
    targets = [outside / "x", Path.home() / "hgm-probe", Path("/etc/hgm-probe"), Path("/usr/hgm-probe"),
               Path("/tmp/hgm-probe-conformance")]  # fmt: skip
    script = "; ".join(f"echo pwned > {t}" for t in targets)
    r = run(sandbox, ws, ["sh", "-c", script + "; echo done"])
    assert "done" in r.stdout
    assert [t for t in targets if t.exists()] == []


def test_network_is_unreachable(sandbox, ws):
    isolating(sandbox)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('FAILED', e)\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 80), timeout=3); print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('FAILED', e)\n"
    )
    r = run(sandbox, ws, py(code))
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()
    assert r.ok, r
    assert "CONNECTED" not in r.stdout and r.stdout.count("FAILED") == 2


# --- hostile programs -------------------------------------------------------------------------

HEARTBEAT = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
def beat(name):
    while True:
        with open(name, 'a') as f: f.write('.')
        time.sleep(0.05)
if os.fork() == 0:          # child ignoring SIGTERM
    if os.fork() == 0:      # grandchild, in its own session
        os.setsid() if sys.argv[1] == 'setsid' else None
        beat('grandchild')
    beat('child')
beat('parent')
"""


def _still_growing(path: Path) -> bool:
    before = path.stat().st_size
    time.sleep(0.5)
    return path.stat().st_size != before


def test_infinite_loop_times_out_and_the_whole_tree_dies(sandbox, ws):
    (ws / "tree.py").write_text(HEARTBEAT)
    t0 = time.monotonic()
    r = run(sandbox, ws, ["python3", "tree.py", "same-session"], timeout=2)
    assert r.timed_out and not r.ok
    assert time.monotonic() - t0 < 8
    beats = [ws / n for n in ("parent", "child", "grandchild")]
    assert all(b.exists() for b in beats), "tree did not start"
    assert [b.name for b in beats if _still_growing(b)] == []


def test_timeout_kills_descendants_that_left_the_session(sandbox, ws):
    isolating(sandbox)  # none kills the process group; setsid() escapes it
    (ws / "tree.py").write_text(HEARTBEAT)
    r = run(sandbox, ws, ["python3", "tree.py", "setsid"], timeout=2)
    assert r.timed_out
    assert [n for n in ("parent", "child", "grandchild") if _still_growing(ws / n)] == []


def test_background_process_does_not_outlive_the_command(sandbox, ws):
    t0 = time.monotonic()
    r = run(
        sandbox,
        ws,
        [
            "sh",
            "-c",
            "(while true; do echo . >> bg; sleep 0.05; done) & while [ ! -s bg ]; do sleep 0.01; done; echo started",
        ],
    )
    assert r.ok and r.stdout == "started\n" and time.monotonic() - t0 < 5
    assert not _still_growing(ws / "bg")


FORK_BOMB = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        with open('beat', 'a') as f: f.write('.')
        time.sleep(0.01)
"""


def test_fork_bomb_is_contained(sandbox, ws):
    isolating(sandbox)
    enforcer = getattr(sandbox, "enforcer", None)
    if enforcer is not None and enforcer.kind == "rlimit":
        pytest.skip(f"no process limit without cgroups ({enforcer.reason})")
    t0 = time.monotonic()
    r = run(sandbox, ws, py(FORK_BOMB), timeout=5, limits=Limits(pids=64))
    assert time.monotonic() - t0 < 15
    assert r.timed_out and not r.ok
    assert (ws / "beat").exists(), "the bomb never hit the process limit"
    assert not _still_growing(ws / "beat"), "bomb processes survived the timeout"
    host = run(get_sandbox("none"), ws, ["sh", "-c", "echo alive"], timeout=10)
    assert host.stdout == "alive\n"  # the host can still start processes


def test_a_gigabyte_of_output_is_capped(sandbox, ws):
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    r = run(sandbox, ws, ["sh", "-c", "head -c 1000000000 /dev/zero; echo done >&2"],
            limits=Limits(output_bytes=100_000), timeout=60)  # fmt: skip
    elapsed = time.monotonic() - t0
    assert r.ok, r.stderr
    assert r.output_truncated and len(r.stdout) == 100_000 and set(r.stdout) == {"\0"}
    assert r.stderr == "done\n"
    assert elapsed < 30
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 100, f"harness peak RSS grew by {grown_mb:.0f} MB"


def test_memory_limit_is_enforced(sandbox, ws):
    isolating(sandbox)
    r = run(sandbox, ws, py("b = b'x' * (2 * 1024**3); print('allocated', len(b))"),
            limits=Limits(memory_mb=256), timeout=60)  # fmt: skip
    assert r.returncode != 0 and "allocated" not in r.stdout
    small = run(sandbox, ws, py("b = b'x' * (64 * 1024**2); print('allocated')"), limits=Limits(memory_mb=256))
    assert small.ok, small


def test_file_size_limit_is_enforced(sandbox, ws):
    isolating(sandbox)
    r = run(sandbox, ws, ["sh", "-c", "head -c 20000000 /dev/zero > big; echo wrote"], limits=Limits(file_size_mb=5))
    assert (ws / "big").stat().st_size <= 5 * 1024 * 1024
    assert r.returncode != 0 or "File size limit exceeded" in r.stderr


# --- choosing a backend -----------------------------------------------------------------------


def test_unknown_backend_lists_known_ones():
    with pytest.raises(UserError, match="known: " + ", ".join(sorted(BACKENDS))):
        get_sandbox("chroot")


def test_missing_bwrap_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        get_sandbox("bwrap")


def test_bwrap_without_namespaces_says_what_to_do(monkeypatch, tmp_path):
    """A bwrap that cannot create namespaces (as in unprivileged containers) is reported early."""
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable, match="cannot create namespaces.*No permissions.*--privileged"):
        get_sandbox("bwrap")


def test_bwrap_sees_the_harness_python_prefix_for_venvs(tmp_path):
    """A venv built by the harness, mounted read-only, runs inside (its base prefix is visible)."""
    try:
        sandbox = get_sandbox("bwrap")
    except SandboxUnavailable as e:
        pytest.skip(str(e))
    import venv

    venv.create(tmp_path / "venv", with_pip=False, symlinks=True)
    r = sandbox.exec([str(tmp_path / "venv/bin/python"), "-c", "import sys; print(sys.prefix)"],
                     cwd="/", timeout=30, mounts=[Mount(tmp_path / "venv", str(tmp_path / "venv"))])  # fmt: skip
    assert r.ok, r
    assert r.stdout.strip() == str(tmp_path / "venv") and sys.base_prefix


def test_concurrent_execs_do_not_mix(sandbox, ws):
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int):
        return run(sandbox, ws, ["sh", "-c", f"sleep 0.2; echo {i}; echo err{i} >&2"], stdin=f"in{i}")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(8)))
    assert [(r.stdout, r.stderr, r.ok) for r in results] == [(f"{i}\n", f"err{i}\n", True) for i in range(8)]


def test_none_refuses_mounts_it_cannot_honor(tmp_path):
    with pytest.raises(SandboxUnavailable, match="host path as the target"):
        get_sandbox("none").exec(["true"], cwd="/", timeout=5, mounts=[Mount(tmp_path, "/workspace")])


def test_bwrap_rlimit_fallback_keeps_runtimes_working(ws):
    """Without cgroups memory is RLIMIT_DATA (the suite's bwrap-rlimit case checks it is enforced);
    runtimes that reserve huge address space (JVM, Go, Node) must still start under it."""
    from hgm.sandbox.bwrap import BwrapSandbox

    try:
        sandbox = BwrapSandbox(use_cgroups=False)
    except SandboxUnavailable as e:
        pytest.skip(str(e))
    assert sandbox.enforcer.kind == "rlimit"
    runtimes = {"java": ["java", "-version"], "go": ["go", "version"], "node": ["node", "-e", "1"]}
    present = {k: v for k, v in runtimes.items() if any(Path(d, k).exists() for d in sandbox.default_path.split(":"))}
    for name, argv in present.items():
        r = run(sandbox, ws, argv, limits=Limits(memory_mb=512), timeout=60)
        assert r.ok, (name, r)


# --- shutdown (a second Ctrl-C) ---------------------------------------------------------------


def _fresh(sandbox):
    """A new instance of the same backend (shutdown closes a sandbox for good)."""
    from hgm.sandbox.rootfs import RootfsSandbox

    if sandbox.name == "bwrap":
        from hgm.sandbox.bwrap import BwrapSandbox

        return BwrapSandbox(use_cgroups=sandbox.enforcer.kind != "rlimit")
    if isinstance(sandbox, RootfsSandbox):
        return RootfsSandbox(sandbox.rootfs)
    return get_sandbox(sandbox.name)


def _processes_with(marker: str, sleeping: bool = False) -> list[int]:
    """Host pids whose command line holds `marker` (sleeping: `sleep N.marker` processes only)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0") if proc.name.isdigit() else []
        except OSError:
            continue
        if any(marker in a for a in argv) and (not sleeping or (argv[0].endswith("sleep") and len(argv) >= 2)):
            found.append(int(proc.name))
    return found


def test_shutdown_ends_running_commands_leaves_nothing_and_refuses_new_ones(sandbox, ws):
    closing = _fresh(sandbox)
    marker = f"{os.getpid()}{time.monotonic_ns() % 10**9}"
    script = f"sleep 3000.{marker} & sleep 3001.{marker} & touch started; wait"
    outcome: list[BaseException | object] = []

    def work() -> None:
        try:
            outcome.append(run(closing, ws, ["sh", "-c", script], timeout=600))
        except BaseException as e:  # noqa: BLE001 - what exec raised is the result here
            outcome.append(e)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(_processes_with(marker, sleeping=True)) < 4:  # two sleeps in each of the two commands
        assert time.monotonic() < deadline, "the commands did not start"
        time.sleep(0.1)
    t0 = time.monotonic()
    assert closing.shutdown(timeout=10) == 2
    for t in threads:
        t.join(20)
    assert time.monotonic() - t0 < 20 and not any(t.is_alive() for t in threads)
    assert [type(o) for o in outcome] == [SandboxClosed, SandboxClosed], outcome
    time.sleep(0.5)
    assert _processes_with(marker) == [], "a sandboxed process outlived shutdown"
    enforcer = getattr(closing, "enforcer", None)
    if enforcer is not None and enforcer.kind != "rlimit":
        assert [d for p in enforcer._parents for d in p.glob(f"hgm-{os.getpid()}-*")] == [], "a cgroup was left"
    if closing.name == "docker":
        left = closing.client.api.containers(all=True, filters={"label": f"hgm.run={closing.run_id}"})
        assert left == [], "a container was left"
    with pytest.raises(SandboxClosed):
        run(closing, ws, ["true"])
