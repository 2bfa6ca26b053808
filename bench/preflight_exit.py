"""How long `hgm run` takes to give up on a provider it cannot reach (issue 16: it must be well
under 10 s; before the preflight it took 5 min 36 s of retries).

    python bench/preflight_exit.py [--repeat 3]

Runs the README's command 1 with a key whose provider cannot be reached, three ways: an
unresolvable name, a closed loopback port, and the real default (api.deepseek.com, unreachable
on a machine without network), in a fresh temporary directory; prints the exit code, the wall
time and the first line of the error.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cases = {"unresolvable name": ["--set", "llm.base_url=https://nonexistent.invalid/v1"],
             "closed port": ["--set", f"llm.base_url=http://127.0.0.1:{closed_port()}/v1"],
             "default provider": []}
    env = {**os.environ, "DEEPSEEK_API_KEY": "sk-not-a-real-key", "COLUMNS": "300"}
    for name, extra in cases.items():
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as cwd:
                start = time.monotonic()
                done = subprocess.run([sys.executable, "-m", "hgm.cli", "run", "--polyglot", "--self-improve-llm",
                                       "deepseek-chat", "--max-task-evals", "1", *extra], cwd=cwd, env=env,
                                      capture_output=True, text=True, timeout=600, check=False)
                seconds = time.monotonic() - start
            line = (done.stderr.strip().splitlines() or [""])[-1][:150]
            print(f"{name:18} exit {done.returncode}  {seconds:5.1f} s  {line}")
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
