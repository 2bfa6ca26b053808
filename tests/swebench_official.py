"""Grade predictions with the official harness, `swebench.harness.run_evaluation`, on the local
instance images (no registry, no Hub): its `main` on a local dataset file (the instances as hgm
loads them, in the official schema) and a predictions JSONL, in a subprocess whose working
directory holds its logs and report. Images are the ones hgm built (run_evaluation builds nothing
without a task repo, and pulls only what is missing).

Its `cleanup_container` shells out to a `docker` CLI; a Podman host may have none, so a `docker`
first on its PATH runs the real one, else `podman` (without either every graded container would be
left behind). The shim's `stop` does not wait: the harness's `docker stop --time=15` waits 15 s per
container for `tail -f /dev/null`, which as pid 1 ignores SIGTERM; the instance is graded by then.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hgm.sandbox.docker import find_engine

RUNNER = """
import sys
from swebench.harness.run_evaluation import main
main(dataset_name=sys.argv[1], split="test", instance_ids=None, predictions_path=sys.argv[2], max_workers=2,
     open_file_limit=4096, run_id=sys.argv[3], timeout=900, rewrite_reports=False, modal=False, report_dir=".")
"""

SHIM = """#!/bin/sh
if [ "$1" = stop ]; then
  shift
  set -- stop --time=0 $(for a in "$@"; do case "$a" in --time=*) ;; *) echo "$a" ;; esac; done)
fi
exec {cli} "$@"
"""


def write_dataset(instances: list[dict], dest: Path) -> Path:
    """The instances as a local JSONL dataset file run_evaluation loads."""
    dest.write_text("".join(json.dumps(i) + "\n" for i in instances))
    return dest


def run_official(dataset: Path, predictions: Path, work: Path, run_id: str) -> dict:
    """run_evaluation's run report ({model}.{run_id}.json), plus "reports": each graded
    instance's report.json entry. All predictions in the file must share one model name."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ}
    url, _ = find_engine()
    if url:
        env["DOCKER_HOST"] = url
    cli = shutil.which("docker") or shutil.which("podman")
    if cli:
        shim = work / "bin"
        shim.mkdir(exist_ok=True)
        (shim / "docker").write_text(SHIM.format(cli=cli))
        (shim / "docker").chmod(0o755)
        env["PATH"] = f"{shim}:{env.get('PATH', '')}"
    done = subprocess.run([sys.executable, "-c", RUNNER, str(dataset), str(predictions), run_id], cwd=work, env=env,
                          capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    model = json.loads(predictions.read_text().splitlines()[0])["model_name_or_path"]
    report = json.loads((work / f"{model.replace('/', '__')}.{run_id}.json").read_text())
    logs = work / "logs" / "run_evaluation" / run_id / model.replace("/", "__")
    report["reports"] = {p.parent.name: json.loads(p.read_text())[p.parent.name] for p in logs.glob("*/report.json")}
    return report


def verdicts(report: dict) -> dict[str, str]:
    """instance id -> resolved / unresolved / empty_patch / error, as the official report files them."""
    out: dict[str, str] = {}
    for kind in ("resolved", "unresolved", "empty_patch", "error"):
        for iid in report[f"{kind}_ids"]:
            out[iid] = kind
    return out
