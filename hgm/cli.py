"""The `hgm` command line. Commands are thin: parse flags, call into the modules, print.

A UserError prints its message (which says what to do) and exits 2, without a traceback;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hgm.config import HGMConfig, load_config, set_keys
from hgm.domain import EvalStatus
from hgm.errors import UserError
from hgm.markup import literal

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Grow better coding agents with the Huxley-Gödel "
                                                                   "Machine.")
benchmark_app = typer.Typer(no_args_is_help=True, help="Fetch, list and validate benchmarks.")
app.add_typer(benchmark_app, name="benchmark")
llm_app = typer.Typer(no_args_is_help=True, help="Model names, keys and the scripted LLM.")
app.add_typer(llm_app, name="llm")
docker_app = typer.Typer(no_args_is_help=True, help="The docker sandbox backend's evaluation image.")
app.add_typer(docker_app, name="docker")

console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("-c", "--config", help="YAML config merged over the defaults.")]
OverrideOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Set one config key, e.g. --set search.alpha=0.5 (repeatable).")
]
OutputOpt = Annotated[Path | None, typer.Option("-o", "--output", help="Where the logs go (default "
                                                                       "./hgm-evals/TASK-TIME).")]
RunDirOpt = Annotated[Path | None, typer.Option("--run-dir", help="Run directory: take the agent and config from it.")]


BenchmarkOpt = Annotated[str | None, typer.Option("--benchmark", help="Benchmark: polyglot (default) or swe-bench.")]
SweBenchOpt = Annotated[bool, typer.Option("--swe-bench", help="Short for --benchmark swe-bench.")]
PolyglotOpt = Annotated[bool, typer.Option("--polyglot", help="Short for --benchmark polyglot.")]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="SWE-bench instances: verified, lite, full, a Hub "
                                                                  "dataset id, a .json/.jsonl/.parquet file, or a "
                                                                  "task-repo directory.")]


def resolve_config(config: Path | None, overrides: list[str] | None) -> HGMConfig:
    return load_config(config, overrides or [])


def _set_benchmark(cfg: HGMConfig, benchmark: str | None, swe_bench: bool, polyglot: bool, dataset: str | None) -> None:
    """--benchmark NAME, or its shorthands --swe-bench / --polyglot (at most one), and --dataset."""
    chosen = [n for n, on in (("swe-bench", swe_bench), ("polyglot", polyglot)) if on] + (
        [benchmark] if benchmark else []
    )
    if len(set(chosen)) > 1:
        raise UserError(f"choose one benchmark, not {' and '.join(sorted(set(chosen)))}")
    if chosen:
        from hgm.benchmarks.registry import entry

        entry(chosen[0])  # an unknown name lists the known ones
    set_keys(cfg, {"benchmark.name": chosen[0] if chosen else None})
    if dataset:
        if cfg.benchmark.name != "swe-bench":
            raise UserError("--dataset is for SWE-bench; add --swe-bench")
        cfg.benchmark.dataset = dataset


from hgm.cli_benchmark import register as _register_benchmark_commands  # noqa: E402

_register_benchmark_commands(app, benchmark_app)  # benchmark fetch|list|prepare|validate, doctor
node_app = typer.Typer(no_args_is_help=True, help="Worker nodes of a Ray cluster (docs/cluster.md).")
app.add_typer(node_app, name="node")


@node_app.command("prepare")
def node_prepare(
    from_: Annotated[Path | None, typer.Option("--from", help="Local Polyglot benchmark tree on the node(s).")] = None,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="Prepare every node of this Ray cluster that offers sandbox slots (default: this "
                              "machine).")] = None,
) -> None:
    """Prepare a worker node: benchmark test dependencies and the seed agent's venv; says what is still missing."""
    from hgm.cluster import cluster_report, prepare_node

    if ray_address is None:
        for line in prepare_node(from_):
            console.print(literal(line), soft_wrap=True)
        return
    for ip, slots, lines in cluster_report(ray_address, from_, prepare=True):
        console.print(f"[bold]node {ip}[/] ({slots:g} slots)")
        for line in lines:
            console.print(f"  {literal(line)}", soft_wrap=True)


@app.command("eval-agent")
def eval_agent(
    agent: Annotated[str, typer.Argument(
        help="`initial` (the seed agent), an agent directory, or (with --run-dir) a commit / node id of the run's "
             "archive.")],
    task: Annotated[str, typer.Argument(
        help="Task id: Polyglot (python__transpose) or a SWE-bench instance (django__django-11099).")],
    run: RunDirOpt = None,
    llm: Annotated[str | None, typer.Option(
        "--llm", help="Model the agent uses (llm.downstream), e.g. deepseek-chat or scripted:FILE.")] = None,
    sandbox: Annotated[str | None, typer.Option("--sandbox", help="Sandbox backend: bwrap, docker or none.")] = None,
    from_: Annotated[Path | None, typer.Option("--from", help="Local Polyglot benchmark tree.")] = None,
    benchmark: BenchmarkOpt = None,
    swe_bench: SweBenchOpt = False,
    polyglot: PolyglotOpt = False,
    dataset: DatasetOpt = None,
    log_dir: OutputOpt = None,
    config: ConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Evaluate one agent on one task (Polyglot or SWE-bench), end to end, and say where its logs are."""
    import time as _time

    from hgm import evaluate

    if run is not None and config is None and (run / "config.yaml").is_file():
        config = run / "config.yaml"
    cfg = resolve_config(config, override)
    set_keys(cfg, {"llm.downstream": llm or None, "sandbox.backend": sandbox or None, "benchmark.path": from_ or None})
    _set_benchmark(cfg, benchmark, swe_bench, polyglot, dataset)
    log_dir = log_dir or Path("hgm-evals") / f"{task}-{_time.strftime('%Y%m%d-%H%M%S')}"
    report = evaluate.eval_agent(agent, task, config=cfg, run_dir=run, log_dir=log_dir, console=console)
    o = report.outcome
    colors = {EvalStatus.SOLVED: "green", EvalStatus.FAILED: "red", EvalStatus.EMPTY_PATCH: "yellow"}
    color = colors.get(o.status, "magenta")
    cost = "unknown" if o.cost_usd is None else f"${o.cost_usd:.4f}"
    out = Console()
    out.print(f"[bold {color}]{o.status}[/]  {literal(task)}" + (f"  {literal(o.detail)}" if o.detail else ""))
    if o.flag:
        out.print(f"[bold red](!) flagged {o.flag}[/]: see the test output")
    out.print(f"tokens: {o.prompt_tokens} in / {o.completion_tokens} out   cost: {cost}")
    out.print(f"time: agent {o.agent_s or 0:.1f} s, tests {o.test_s or 0:.1f} s")
    if o.error:
        out.print(f"[magenta]{o.error_type}[/]: {literal(o.error.strip().splitlines()[-1] if o.error.strip() else '')}")
    out.print(literal(f"chat log:    {report.chat}\npatch:       {report.patch}\ntest output: {report.test_output}"))
    out.print(literal(f"all logs:    {report.log_dir}"))


@app.command("run")
def run(
    benchmark: BenchmarkOpt = None,
    swe_bench: SweBenchOpt = False,
    polyglot: PolyglotOpt = False,
    dataset: DatasetOpt = None,
    subset: Annotated[str | None, typer.Option(
        "--subset", help="Polyglot: small (10), medium (50) or all. SWE-bench: verified-10 (small), verified-50 "
                         "(medium), verified-60, verified-140 (big), all, or a file of instance ids.")] = None,
    tasks: Annotated[str | None, typer.Option("--tasks", help="Comma-separated task ids (overrides --subset).")] = None,
    self_improve_llm: Annotated[str | None, typer.Option(
        "--self-improve-llm", help="Model agents rewrite themselves with.")] = None,
    downstream_llm: Annotated[str | None, typer.Option(
        "--downstream-llm", help="Model agents solve tasks with.")] = None,
    diagnose_llm: Annotated[str | None, typer.Option("--diagnose-llm", help="Model that diagnoses failures.")] = None,
    max_task_evals: Annotated[int | None, typer.Option(
        "--max-task-evals", min=1, help="Budget of task evaluations.")] = None,
    initial_evals: Annotated[int | None, typer.Option(
        "--initial-evals", min=0, help="Evaluate the initial agent on this many tasks first, as the paper does "
                                       "(search.initial_evals).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Parallel workers.")] = None,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="Search policy: hgm; dgm, greedy, random (selection-only ablations: their parent choice "
                         "inside HGM's budget allocation); dgm-paper, sica (DGM and SICA as published, with their own "
                         "evaluation schedules); best-of-n (no self-modification: the initial agent, repeatedly); ga "
                         "(DARWIN's genetic algorithm). docs/comparisons.md.")] = None,
    output_dir: Annotated[Path | None, typer.Option(
        "--run-dir", help="New run directory (default ./runs/TIME).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Resume the run in this directory.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the search's random choices.")] = None,
    sandbox: Annotated[str | None, typer.Option("--sandbox", help="Sandbox backend: bwrap, docker or none.")] = None,
    from_: Annotated[Path | None, typer.Option("--from", help="Local Polyglot benchmark tree.")] = None,
    max_usd: Annotated[float | None, typer.Option(
        "--max-usd", min=0, help="Stop once the run spent this many dollars.")] = None,
    agent: Annotated[str | None, typer.Option(
        "--agent", help="Start the search from this agent: `initial` (the seed agent, default) or a directory holding "
                        "coding_agent.py.")] = None,
    target: Annotated[Path | None, typer.Option(
        "--target", help="Evolve your own program against your own scorer: a directory holding target.yaml (README: "
                         "Bring your own target); --set target.KEY=VALUE overrides a key of the file.")] = None,
    approve: Annotated[str | None, typer.Option(
        "--approve", help="rewrites: every new child waits for a person's approval before it is evaluated "
                          "(steer.approve; `hgm steer RUN pending`).")] = None,
    executor: Annotated[str | None, typer.Option(
        "--executor", help="Where jobs run: local (threads, default) or ray (docs/cluster.md).")] = None,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="Ray cluster to join, e.g. 10.0.0.5:6379 (with --executor ray).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan and a cost forecast; start nothing (no sandbox, no run directory, no "
                          "network).")] = False,
    runs_dir: Annotated[Path | None, typer.Option(
        "--runs-dir", help="With --dry-run: earlier runs to take tokens per evaluation and per rewrite from (default "
                           "./runs).")] = None,
    config: ConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Grow a tree of self-improving coding agents (HGM) and name the best one."""
    import time as _time

    from hgm import run as run_mod

    flags = {
        "benchmark.subset": subset, "llm.self_improve": self_improve_llm, "llm.downstream": downstream_llm,
        "llm.diagnose": diagnose_llm, "search.max_task_evals": max_task_evals, "search.initial_evals": initial_evals,
        "search.workers": workers, "search.policy": policy, "search.seed": seed, "sandbox.backend": sandbox,
        "benchmark.path": from_, "budget.max_usd_run": max_usd, "executor.name": executor,
        "executor.ray_address": ray_address, "steer.approve": approve,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    if runs_dir is not None and not dry_run:
        raise UserError("--runs-dir goes with --dry-run (the earlier runs its forecast reads)")
    if resume is not None and dry_run:
        raise UserError("--dry-run plans a new run; `hgm show-tree` and `hgm report` show one that exists")
    if resume is not None:
        may_change = {"search.workers", "executor.name", "executor.ray_address"}
        extra = sorted(set(given) - may_change) + (["--tasks"] if tasks else []) + \
            (["-c/--set"] if config or override else []) + (["--run-dir"] if output_dir else []) + \
            (["--agent"] if agent else []) + (["--target"] if target else []) + \
            (["--benchmark/--swe-bench/--polyglot/--dataset"] if benchmark or swe_bench or polyglot or dataset else [])
        if extra:
            raise UserError(f"--resume continues a run with its own settings; drop {', '.join(extra)} "
                            "(only --workers, --executor and --ray-address may change)")
        code = run_mod.resume_run(resume, console, changes={k: v for k, v in given.items() if k in may_change})
    else:
        target_keys = [o for o in override or [] if o.startswith("target.")]
        cfg = resolve_config(config, [o for o in override or [] if not o.startswith("target.")])
        set_keys(cfg, given)
        if tasks:
            cfg.benchmark.task_ids = [t.strip() for t in tasks.split(",") if t.strip()]
        _set_benchmark(cfg, benchmark, swe_bench, polyglot, dataset)
        if target_keys and target is None:
            raise UserError("--set target.KEY=VALUE overrides target.yaml: add --target DIR")
        if target is not None:
            from hgm.benchmarks.target.spec import load_target

            if agent or benchmark or swe_bench or polyglot or dataset:
                raise UserError("--target DIR is the benchmark and the root agent: drop --agent/--benchmark/"
                                "--swe-bench/--polyglot/--dataset")
            spec = load_target(target, target_keys)
            set_keys(cfg, {"benchmark.name": "target", "benchmark.target": spec,
                           "benchmark.subset": subset or "all"})
        from hgm.benchmarks.registry import entry

        check_config = entry(cfg.benchmark.name).check_config
        if check_config is not None:
            check_config(cfg)
        if dry_run:
            from hgm.forecast import show_plan

            if runs_dir is not None and not runs_dir.is_dir():
                raise UserError(f"--runs-dir {runs_dir} is not a directory; give the directory your earlier runs "
                                "are in (default ./runs)")
            show_plan(cfg, runs_dir or Path("runs"), Console())
            raise typer.Exit(0)
        from hgm.paths import resolve_agent_dir

        if cfg.benchmark.target is not None:  # the root node is the target directory itself
            initial = resolve_agent_dir(str(cfg.benchmark.target.dir)) if cfg.benchmark.target.rewriter == "self" \
                else cfg.benchmark.target.dir
        else:
            initial = resolve_agent_dir(agent or "initial")  # checked before the run directory is touched
        out = output_dir or Path("runs") / _time.strftime("%Y%m%d-%H%M%S")
        code = run_mod.new_run(out, cfg, console, initial_agent=initial)
    raise typer.Exit(code)


@app.command("show-tree")
def show_tree(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    format: Annotated[str, typer.Option(
        "--format", help="rich (on a terminal), text (when piped), json or dot.")] = "auto",
    usage: Annotated[bool, typer.Option("--usage", help="Also show LLM calls, tokens and dollars by role.")] = False,
) -> None:
    """Show a run's tree of agents: own and clade results, CMP, children, failed rewrites, the final agent."""
    from hgm import show_tree as st

    renderers = {"text": st.render_text, "json": st.render_json, "dot": st.render_dot}
    if format not in ("auto", "rich") and format not in renderers:
        raise UserError(f"unknown --format {format!r}; use rich, text, json or dot")
    if format == "auto":  # rich wraps long lines at the terminal's width; piped output stays one node a line
        format = "rich" if sys.stdout.isatty() else "text"
    if usage and format == "dot":
        raise UserError("--usage goes with --format rich, text or json, not dot")
    stats = st.load(run_dir)
    by_role = st.load_usage(run_dir) if usage else None
    if format == "rich":
        Console().print(st.render_rich(stats))
        if by_role is not None:
            Console().print(st.usage_table(by_role))
    elif format == "json" and by_role is not None:
        typer.echo(st.render_json_with_usage(stats, by_role), nl=False)
    else:
        typer.echo(renderers[format](stats) + (st.render_usage_text(by_role) if by_role is not None else ""), nl=False)


@app.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    node: Annotated[str, typer.Argument(help="Node id (or a commit of the run's archive).")],
    dest: Annotated[Path | None, typer.Argument(help="New directory to write the agent's code into.")] = None,
    predictions: Annotated[Path | None, typer.Option(
        "--predictions", help="Write the node's SWE-bench patches as the official predictions JSONL (instance_id, "
                              "model_name_or_path, model_patch) for swebench.harness.run_evaluation.")] = None,
    model_name: Annotated[str | None, typer.Option(
        "--model-name", help="model_name_or_path in the predictions (default hgm.<run dir name>.node<N>).")] = None,
) -> None:
    """Write one agent's code (a node of the run) into a directory, and/or its SWE-bench predictions."""
    from hgm.archive import Archive

    if dest is None and predictions is None:
        raise UserError("nothing to export: give DEST (a new directory for the agent's code) and/or --predictions FILE")
    if not (run_dir / "archive").exists():
        raise UserError(f"{run_dir} has no agent archive (archive/); give a run directory made by `hgm run`")
    archive = Archive.open(run_dir / "archive")
    sha = archive.resolve_agent(node)
    if dest is not None:
        archive.export(sha, dest)
        Console().print(literal(f"node {node} (commit {sha[:12]}) written to {dest}"))
    if predictions is not None:
        from hgm.benchmarks.swe_bench.predictions import write_predictions
        from hgm.store import RunStore

        with RunStore.open(run_dir, readonly=True) as store:
            node_id = next((n.id for n in store.nodes() if n.commit == sha), None)
        if node_id is None:
            raise UserError(f"commit {sha[:12]} is not a node of {run_dir}; `hgm show-tree {run_dir}` lists the nodes")
        count = write_predictions(
            run_dir, node_id, predictions, model_name or f"hgm.{run_dir.resolve().name}.node{node_id}"
        )
        Console().print(literal(f"node {node_id}: {count} SWE-bench predictions written to {predictions}"))


@app.command("simulate")
def simulate(
    preset: Annotated[
        str, typer.Option("--preset", help="World preset: default, deceptive or darwin (hgm/configs/simulate/).")
    ] = "default",
    world_file: Annotated[
        Path | None, typer.Option("--world", help="World parameters (YAML/JSON); overrides --preset.")
    ] = None,
    policies: Annotated[
        str,
        typer.Option(
            "--policies",
            help="Comma-separated policies to compare (with hgm among them, also the evaluations hgm needs "
            "to reach each other's final utility).",
        ),
    ] = "hgm,dgm-paper,sica,best-of-n,dgm,greedy,random",
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds (worlds) per policy.")] = 50,
    budget: Annotated[
        int | None, typer.Option("--max-task-evals", min=1, help="Task evaluations per run (search.max_task_evals).")
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            help="Run ONE simulated search through the real scheduler and store in DIR (resumes if DIR holds a run).",
        ),
    ] = None,
    delay: Annotated[
        float, typer.Option("--delay", min=0, help="With --run-dir: seconds each simulated evaluation sleeps.")
    ] = 0.0,
    format: Annotated[str, typer.Option("--format", help="text (a table) or json.")] = "text",
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write the comparison (table with 95% CIs, curves overlaid) as a self-contained HTML file.",
        ),
    ] = None,
    config: ConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Compare search policies in a synthetic world with latent utility and metaproductivity (no LLM).

    Each agent has a latent skill and metaproductivity; a rewrite fails or moves the child's skill by
    the parent's metaproductivity plus noise; a task is solved with P = sigmoid(skill - difficulty).
    The full model is documented at the top of hgm/simulate.py.
    """
    import json as _json

    from hgm import simulate as sim

    if format not in ("text", "json"):
        raise UserError(f"unknown --format {format!r}; use text or json")
    as_json = format == "json"
    if html is not None and run_dir is not None:
        raise UserError("--html compares policies over seeds; for a --run-dir run use `hgm report DIR`")
    world = sim.load_world(preset, world_file)
    cfg = resolve_config(config, (override or []) + ([f"search.max_task_evals={budget}"] if budget else []))
    out = Console()
    if run_dir is not None:
        result, utility = sim.run_in_dir(run_dir, world, cfg, delay_s=delay)
        summary = {"final_agent": result.final_agent, "completed": result.completed,
                   "evals_done": result.evals_done, "final_true_utility": utility}
        if as_json:
            typer.echo(_json.dumps(summary))
        else:
            out.print(f"final agent {result.final_agent} (true utility {utility:.3f}) "
                      f"after {result.evals_done} evaluations")
        return
    rows = sim.compare(world, cfg.search, [p.strip() for p in policies.split(",") if p.strip()], seeds,
                       curves=html is not None)
    title = f"world {world_file or preset}, {seeds} seeds, budget {cfg.search.max_task_evals}"
    matches = sim.evals_to_match(rows)
    if as_json:
        by_policy = {m["baseline"]: m for m in matches}
        typer.echo(sim.to_json([{**r, "evals_to_match": by_policy.get(r["policy"])} for r in rows]))
    else:
        out.print(sim.table(rows, literal(title)))
        if matches:
            out.print(sim.match_table(matches, f"task evaluations hgm needs to reach each policy's final utility "
                                               f"at {cfg.search.max_task_evals} (same seeds)"))
    if html is not None:
        from hgm.report.compare import write_simulation

        Console(stderr=True).print(literal("comparison written to "
                                           f"{write_simulation(rows, html, f'hgm simulate: {title}')}"),
                                   soft_wrap=True, highlight=False)


@llm_app.command("models")
def llm_models(config: ConfigOpt = None, override: OverrideOpt = None) -> None:
    """List the provider table: model, provider, base URL, key variable (set?), prices per M tokens."""
    import os

    from rich.table import Table

    from hgm.llm.providers import ProviderTable

    cfg = resolve_config(config, override)
    table = ProviderTable.load(cfg.llm.providers_file)
    out = Table("model", "provider", "base URL", "key", "$ in", "$ cached in", "$ out")
    for name in sorted(table.models):
        route = table.resolve(name)
        key = (
            "-" if route.key_env is None else f"{route.key_env} ({'set' if os.environ.get(route.key_env) else 'unset'})"
        )
        price = route.price

        def fmt(v: float | None) -> str:
            return "unknown" if v is None else f"{v:g}"

        out.add_row(*map(literal, (name, route.provider, route.base_url, key, fmt(price.input if price else None),
                                   fmt(price.cached_input if price else None),
                                   fmt(price.output if price else None))))
    Console().print(out)
    Console().print(literal("Also: PREFIX/MODEL for prefixes " + ", ".join(sorted(table.prefixes))
                            + "; MODEL@URL (key from HGM_API_KEY); scripted:PATH."))


@llm_app.command("check")
def llm_check(models: Annotated[list[str], typer.Argument(help="Model names to check.")],
              config: ConfigOpt = None, override: OverrideOpt = None) -> None:
    """Resolve model names, check their API keys are set and their endpoints answer (DNS, TCP, TLS; no
    request), as `hgm run` does before it starts; exit 2 naming what is wrong."""
    from hgm.llm.providers import check_llm

    cfg = resolve_config(config, override)
    for route in check_llm(cfg.llm, models):
        Console().print(literal(f"{route.name}: ok ({route.provider} {route.base_url or route.script})"))


@llm_app.command("serve-scripted")
def llm_serve_scripted(
    script: Annotated[Path, typer.Argument(help="LLM script (YAML/JSON, format in hgm/llm/scripted.py).")],
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.")] = 8000,
) -> None:
    """Serve a scripted LLM (OpenAI-compatible) until Ctrl-C."""
    from hgm.llm.scripted import main as scripted_main

    scripted_main([str(script), "--port", str(port)])


@docker_app.command("build")
def docker_build(
    base: Annotated[str | None, typer.Option(help="Base image (default python:3.12-slim-bookworm; "
                                                "without a registry: localhost/debian:bookworm).")] = None,
    target: Annotated[str, typer.Option(
        help="full (six Polyglot toolchains) or ci (python, rust, javascript).")] = "full",
    tag: Annotated[str | None, typer.Option(help="Image name (default: the config's sandbox.docker_image).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every layer.")] = False,
    config: ConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Build the evaluation image of the docker sandbox backend, streaming the build log."""
    from hgm.sandbox.docker_image import build_image

    cfg = resolve_config(config, override)
    with console.status("[bold]docker build[/] starting") as status:

        def show(line: str) -> None:
            console.print(line, style="dim", markup=False, highlight=False, soft_wrap=True)
            if "STEP" in line or line.startswith("Step "):
                status.update(f"[bold]docker build[/] {literal(line[:100])}")

        built = build_image(
            tag=tag or cfg.sandbox.docker_image, base=base, target=target, nocache=no_cache, on_line=show
        )
    console.print(f"[green]built[/] {literal(built.tag)} ({built.image_id[:19]}) in {built.seconds:.0f} s")


from hgm.cli_report import register as _register_report_commands  # noqa: E402

_register_report_commands(app)  # report, compare, runs, solve

from hgm.cli_verify import register as _register_verify_commands  # noqa: E402

_register_verify_commands(app)  # verify, replay

from hgm.cli_steer import register as _register_steer_commands  # noqa: E402

_register_steer_commands(
    app
)  # steer RUN veto|pin|hint|pause|resume|budget|note|approve|reject|pending|requests|..., serve


def show_error(e: UserError, to: Console = console) -> None:
    to.print(f"[bold red]error:[/] {literal(e)}", soft_wrap=True)  # a path or command is never folded


def main() -> None:
    try:
        app()
    except UserError as e:
        show_error(e)
        sys.exit(2)


if __name__ == "__main__":
    main()
