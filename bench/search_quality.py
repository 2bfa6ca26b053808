"""Search quality without an LLM: every policy on every simulate preset, same budget and seeds.

    python bench/search_quality.py [--seeds 50] [--budget 800] [--json]

Prints, per preset, the true utility of each policy's final agent (mean ± 95% CI over seeds),
the best true utility in its tree, and how many evaluations it took to reach the preset's target;
then the key figure: the task evaluations HGM needs to reach each other policy's final utility at
the budget (median over seeds, 95% bootstrap CI; hgm.simulate.evals_to_match).
The world model is documented in hgm/simulate.py; presets live in hgm/configs/simulate/.
"""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console

from hgm.config import load_config
from hgm.simulate import PRESET_DIR, compare, evals_to_match, load_world, match_table, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--budget", type=int, default=800)
    ap.add_argument("--policies", default="hgm,dgm-paper,sica,best-of-n,dgm,greedy,random")
    ap.add_argument("--json", action="store_true", help="print JSON (without per-run rows)")
    args = ap.parse_args()
    search = load_config(overrides=[f"search.max_task_evals={args.budget}"]).search
    console = Console()
    out = {}
    for preset in sorted(p.stem for p in PRESET_DIR.glob("*.yaml")):
        started = time.perf_counter()
        rows = compare(load_world(preset), search, args.policies.split(","), args.seeds)
        seconds = time.perf_counter() - started
        matches = {m["baseline"]: m for m in evals_to_match(rows)}
        out[preset] = [{**{k: v for k, v in r.items() if k != "runs"}, "evals_to_match": matches.get(r["policy"])}
                       for r in rows]
        if not args.json:
            console.print(table(rows, f"{preset}: {args.seeds} seeds, budget {args.budget} ({seconds:.1f} s)"))
            if matches:
                console.print(match_table(list(matches.values()), f"{preset}: task evaluations hgm needs to reach "
                                                                  f"each policy's final utility at {args.budget}"))
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
