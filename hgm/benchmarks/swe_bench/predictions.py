"""An agent's SWE-bench patches from a run, as the official predictions JSONL.

`hgm export RUN NODE --predictions FILE` writes one line per instance the node was evaluated on
(counted evaluations only: solved, failed, empty_patch; an infra_error graded nothing):
`{"instance_id", "model_name_or_path", "model_patch"}`, the patch being the one hgm graded
(RUN/<log_dir>/patch.diff: the agent's changes against the base commit, test files dropped; ""
when there were none). `swebench.harness.run_evaluation --predictions_path FILE` grades them
independently. A node evaluated twice on one instance (a finalist's re-evaluation) contributes its
latest evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

from hgm.domain import COUNTED
from hgm.errors import UserError
from hgm.store import RunStore

PATCH_FILE = "patch.diff"


def predictions(run_dir: Path, node_id: int, model_name: str) -> list[dict[str, str]]:
    """The node's predictions, one per evaluated instance, in instance order."""
    with RunStore.open(run_dir, readonly=True) as store:
        if store.config.benchmark.name != "swe-bench":
            raise UserError(f"{run_dir} is a {store.config.benchmark.name} run; --predictions exports SWE-bench "
                            "patches (a run made with `hgm run --swe-bench`)")
        if node_id not in {n.id for n in store.nodes()}:
            raise UserError(f"no node {node_id} in {run_dir}; `hgm show-tree {run_dir}` lists the nodes")
        latest = {e.task_id: e for e in sorted(store.evaluations(node_id), key=lambda e: e.id) if e.status in COUNTED}
    if not latest:
        raise UserError(f"node {node_id} of {run_dir} has no graded SWE-bench evaluation to export")
    out = []
    for task_id, e in sorted(latest.items()):
        patch = run_dir / (e.log_dir or "") / PATCH_FILE
        if not e.log_dir or not patch.is_file():
            raise UserError(f"evaluation {e.id} ({task_id}) has no recorded patch at {patch}; the run directory "
                            "is incomplete")
        out.append({"instance_id": task_id, "model_name_or_path": model_name, "model_patch": patch.read_text()})
    return out


def write_predictions(run_dir: Path, node_id: int, dest: Path, model_name: str) -> int:
    """Write the node's predictions JSONL to `dest`; returns how many instances it holds."""
    rows = predictions(run_dir, node_id, model_name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)
