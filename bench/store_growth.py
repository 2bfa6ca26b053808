"""Run-store bytes per agent conversation of 10, 50 and 100 steps: linear, and the ratio to the raw
conversation size.

The real path: the seed agent in the sandbox -> LLM gateway -> scripted LLM, the gateway recording
every call into a fresh run store. A step is one request; at each but the last the model calls the
agent's bash tool, whose output
(about `--output-bytes` bytes) becomes part of the conversation, which the agent sends whole with
every request. Printed per conversation:

  store      growth of run.sqlite (WAL checkpointed) over an empty store: what the run keeps on disk
  llm rows   the LLM tables' payload: message and request-field blobs, message references, responses
  raw        the conversation once: the last request's messages and tools, plus every response, as JSON
  whole      what storing every request whole would take (the layout before schema 3)
  ratio      store / raw; per step: store / steps (constant when growth is linear)

Usage: python bench/store_growth.py [--steps 10 50 100] [--output-bytes 1500] [--sandbox bwrap]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
from pathlib import Path

from hgm.agent_runtime import AgentLLM, run_agent
from hgm.config import LLMConfig, load_config
from hgm.llm.gateway import Gateway
from hgm.sandbox import get_sandbox, limits_from
from hgm.store import DB_NAME, RunStore

INITIAL_AGENT = Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial"


def store_bytes(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / DB_NAME) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return (run_dir / DB_NAME).stat().st_size


def conversation(tmp: Path, steps: int, output_bytes: int, sandbox_name: str) -> dict[str, float]:
    lines = max(1, output_bytes // 30)  # `ls -l`-like lines of about 30 bytes
    command = f"for i in $(seq {lines}); do echo \"-rw-r--r-- 1 root root $i file_$i.py\"; done"
    script = tmp / "script.json"
    script.write_text(
        json.dumps(
            {
                "responses": [
                    *(
                        {
                            "content": f"Step {i}: let me look again.",
                            "tool_calls": [{"name": "bash", "arguments": {"command": command}}],
                        }
                        for i in range(steps - 1)
                    ),
                    {"content": "Done."},
                ]
            }
        )
    )  # `steps` requests: the seed agent's default step limit is 100
    run_dir = tmp / "run"
    config = load_config()
    store = RunStore.create(run_dir, config)
    empty = store_bytes(run_dir)
    workspace = tmp / "ws"
    workspace.mkdir()
    model = f"scripted:{script}"
    with Gateway(tmp / "gw.sock", llm=LLMConfig(), recorder=store.llm.record, env={}) as gw:
        token = gw.open_session("downstream", model)
        run = run_agent(INITIAL_AGENT, workspace, "base", "Look at the files many times.", language="python",
                        llm=AgentLLM(gw.socket_path, token, model), sandbox=get_sandbox(sandbox_name),
                        limits=limits_from(config.sandbox), timeout_s=1200, log_dir=tmp / "logs")
        gw.close_session(token)
    calls = store._read("SELECT id, status, LENGTH(response_json), LENGTH(messages) FROM llm_calls ORDER BY id")
    assert run.exit_code == 0 and [c[1] for c in calls] == ["ok"] * steps, (run.exit_code, calls[-3:])
    requests = [store.llm.request(c[0]) for c in calls]
    last = requests[-1]
    responses = sum(c[2] for c in calls)
    raw = len(json.dumps([last["messages"], last["tools"]])) + responses
    whole = sum(len(json.dumps(r)) for r in requests) + responses
    blobs = store._read("SELECT SUM(LENGTH(body)) FROM llm_blobs")[0][0]
    store.close()
    grown = store_bytes(run_dir) - empty
    return {
        "steps": steps,
        "calls": len(calls),
        "store": grown,
        "llm rows": blobs + sum(c[3] for c in calls) + responses,
        "raw": raw,
        "whole": whole,
        "ratio": grown / raw,
        "per step": grown / steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--output-bytes", type=int, default=1500, help="bytes of tool output per step")
    parser.add_argument("--sandbox", default="bwrap")
    args = parser.parse_args()
    rows = []
    for steps in args.steps:
        with tempfile.TemporaryDirectory(prefix="hgm-store-growth-") as tmp:
            rows.append(conversation(Path(tmp), steps, args.output_bytes, args.sandbox))
    print(f"{'steps':>5} {'calls':>5} {'store B':>10} {'llm rows B':>10} {'raw B':>10} {'whole B':>12} "
          f"{'store/raw':>9} {'store/step':>10}")
    for r in rows:
        print(f"{r['steps']:>5} {r['calls']:>5} {r['store']:>10,} {r['llm rows']:>10,} {r['raw']:>10,} "
              f"{r['whole']:>12,} {r['ratio']:>9.2f} {r['per step']:>10,.0f}")
    first, last = rows[0], rows[-1]
    print(f"steps x{last['steps'] / first['steps']:.0f}: store x{last['store'] / first['store']:.1f}, "
          f"whole requests x{last['whole'] / first['whole']:.1f}")


if __name__ == "__main__":
    main()
