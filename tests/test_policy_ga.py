"""--policy ga (DARWIN's genetic algorithm) through the real scheduler on the simulated world."""

from __future__ import annotations

import json
from pathlib import Path

from hgm.config import load_config
from hgm.domain import COUNTED, ExpansionStatus, MetaKey
from hgm.simulate import World, run_in_dir
from hgm.store import RunStore


def test_generations_spawn_from_survivors_and_keep_the_top_k(tmp_path: Path) -> None:
    config = load_config(overrides=["search.policy=ga", "search.max_task_evals=60", "search.ga.survivors=2",
                                    "search.ga.offspring=2", "search.ga.sample_size=3"])
    result, utility = run_in_dir(tmp_path / "run", World(tasks=6, score_noise_sd=0.1, rewrite_fail_prob=0.0), config)
    assert result.completed and result.evals_done == 60 and 0 < utility < 1
    with RunStore.open(tmp_path / "run", readonly=True) as store:
        nodes = store.nodes()
        evals = [e for e in store.evaluations() if e.status in COUNTED]
        committed = [x for x in store.expansions() if x.status == ExpansionStatus.COMMITTED]
        state = json.loads(store.get_meta(MetaKey.POLICY_STATE) or "{}")
    sample = sorted({e.task_id for e in evals})
    assert len(sample) == 3  # every agent on the same sample, nothing else
    per_node: dict[int, int] = {}
    for e in evals:
        per_node[e.node_id] = per_node.get(e.node_id, 0) + 1
    assert all(n <= 3 for n in per_node.values())
    assert sum(n == 3 for n in per_node.values()) >= len(per_node) - 4  # only the last generation unfinished
    history = state["history"]
    assert len(history) >= 3
    for gen in history:  # the top K=2 by mean survive, best first
        assert 1 <= len(gen["survivors"]) <= 2 and gen["means"] == sorted(gen["means"], reverse=True)
    means = [gen["means"][0] for gen in history]
    assert means == sorted(means)  # elitist: the best mean never drops
    # every survivor spawns offspring=2 rewrites per generation it survives, no more
    survived = {n.id: 1 + sum(n.id in gen["survivors"] for gen in history) for n in nodes}
    assert all(sum(x.parent_id == n for x in committed) <= 2 * survived[n] for n in survived)
    assert len(nodes) == 1 + len(committed)
