"""Typed run configuration: pydantic models, YAML files under hgm/configs/, dotted CLI overrides.

`load_config(path, overrides)` starts from the packaged `default.yaml` (or the given file, which
is merged on top of it), then applies `section.key=value` overrides. A missing file, an unknown
key or a value of the wrong type is a UserError that names the problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hgm.benchmarks.target.spec import TargetSpec
from hgm.errors import UserError

CONFIG_DIR = Path(__file__).parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"

PolicyName = Literal["hgm", "dgm", "greedy", "random", "dgm-paper", "sica", "best-of-n", "ga"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


class DGMPaperConfig(Section):
    """`--policy dgm-paper`: the Darwin Gödel Machine as published (hgm/baselines.py)."""

    selfimprove_size: int = Field(2, ge=1)
    """Parents drawn per generation (with replacement, weight sigmoid(10*(score-0.5)) / (1+children)),
    each rewritten once; the next generation starts when every child's staged evaluation is over."""
    stages: list[int | str] = [10, 50]
    """The task sets of the staged evaluation, in order, before the rest of the run's tasks: a number
    takes that many of the run's tasks not yet in a stage (in the run's order), a name takes a subset
    of the run's benchmark (polyglot: small, medium) within the run's tasks."""
    evaluate_initial_fully: bool = True
    """The initial agent goes through every stage without gates (DGM scores it on the whole benchmark
    before the first generation); False: it passes the gates like every child."""
    stage_threshold: float = Field(0.4, ge=0, le=1)
    """A child goes on from one stage to the next named stage only if its own success rate so far is
    at least this."""
    rest_needs_second_best: bool = True
    """A child that passed the named stages is evaluated on the rest of the run's tasks only if its
    success rate reaches the archive's second-best score (the best, with one archive agent); False:
    always."""
    archive: Literal["keep_all", "keep_better"] = "keep_all"
    """keep_all: every child that was evaluated joins the archive (the parents' pool); keep_better:
    only a child whose final score is at least the initial agent's minus noise_margin."""
    noise_margin: float = Field(0.1, ge=0, le=1)
    """keep_better's leeway below the initial agent's score."""


class SICAConfig(Section):
    """`--policy sica`: the Self-Improving Coding Agent as published (hgm/baselines.py)."""

    sample_size: int | None = Field(None, ge=1)
    """Tasks in the fixed sample every agent is evaluated on: the run's first this-many tasks (None:
    all of the run's tasks)."""
    confidence: float = Field(0.95, gt=0, lt=1)
    """Level of the best agent's confidence interval (normal approximation) whose lower bound a
    base-agent candidate's mean must reach."""


class GAConfig(Section):
    """`--policy ga`: DARWIN's genetic algorithm (hgm/policy_ga.py)."""

    survivors: int = Field(2, ge=1)
    """K: agents that survive each generation (the top K by mean score over the sample)."""
    offspring: int = Field(2, ge=1)
    """Rewrites each survivor spawns per generation."""
    sample_size: int | None = Field(None, ge=1)
    """Tasks every agent is evaluated on before selection: the run's first this-many (None: all)."""


class SearchConfig(Section):
    policy: PolicyName = "hgm"
    """Which policy decides what to expand and evaluate: hgm; the selection-only ablations dgm, greedy
    and random (their parent choice inside HGM's budget allocation); the published baselines dgm-paper
    and sica (their own schedules); best-of-n (no self-modification: the initial agent, repeatedly); ga
    (DARWIN's genetic algorithm, its own schedule)."""
    final_rule: Literal["lower_bound", "mean", "archive_best"] | None = None
    """How the final agent is named: lower_bound = highest BetaPPF(final_quantile, 1+n_s, 1+n_f) of its
    own results (HGM); mean = highest own success rate; archive_best = highest own success rate among the
    policy's archive (dgm-paper: the agents kept; others: every agent with a result). None: the policy's
    own (hgm: lower_bound, dgm-paper and sica: archive_best, the rest: mean)."""
    alpha: float = Field(0.6, gt=0)
    """Expand iff N**alpha >= |T| (N task evaluations, |T| agents, in-flight work included)."""
    beta: float = Field(1.0, ge=0)
    """Cool-down exponent: tau = (B / b) ** beta when cool_down is on."""
    cool_down: bool = False
    """Raise the Thompson-sampling temperature as the budget runs out (exploitation late)."""
    eval_random_level: float = Field(1.0, ge=0, le=1)
    """Probability that a sampled task is drawn at random; otherwise the next in fixed order."""
    initial_expansions: int = Field(5, ge=0)
    """Expansions of the root started in parallel before the policy takes over."""
    workers: int = Field(1, ge=1)
    """Parallel workers, each running one decision (expand or evaluate) at a time."""
    max_task_evals: int = Field(800, ge=1)
    """Budget: task evaluations in total (finalist re-evaluations included)."""
    parent_min_successes: int = Field(1, ge=0)
    """An agent is eligible as a parent once it solved at least this many tasks."""
    final_quantile: float = Field(0.01, gt=0, lt=1)
    """Final agent = highest BetaPPF(q, 1+n_s, 1+n_f) of its own results."""
    finalists: int = Field(0, ge=0)
    """Re-evaluate the top-k agents on more tasks before naming the final one (0 = off)."""
    finalist_evals: int = Field(0, ge=0)
    """Extra task evaluations per finalist (taken from max_task_evals)."""
    seed: int = 0
    """Seed of the search's random choices; with one worker a run is reproducible."""
    initial_evals: int = Field(10, ge=0)
    """Evaluate the root (initial agent) on this many tasks first, in parallel with initial_expansions."""
    max_consecutive_infra_errors: int = Field(5, ge=1)
    """Stop the run with an error after this many infra errors in a row (broken sandbox, LLM down)."""
    max_consecutive_failed_rewrites: int = Field(10, ge=1)
    """Stop the run with an error after this many failed rewrites in a row (each costs LLM calls)."""
    max_failed_rewrites_per_parent: int = Field(3, ge=1)
    """An agent whose last this-many rewrites failed is no longer chosen as a parent; rewrites in flight
    count too, so no agent ever has more than this many failed-or-running rewrites."""
    dgm_paper: DGMPaperConfig = DGMPaperConfig()
    """Settings of --policy dgm-paper."""
    sica: SICAConfig = SICAConfig()
    """Settings of --policy sica."""
    ga: GAConfig = GAConfig()
    """Settings of --policy ga."""


class ExecutorConfig(Section):
    name: Literal["local", "ray"] = "local"
    """Where jobs run: local (threads in the `hgm run` process) or ray (a Ray cluster, `pip install
    'hgm[ray]'`; docs/cluster.md)."""
    ray_address: str | None = None
    """ray: the cluster to join (e.g. 10.0.0.5:6379); None starts a one-machine Ray with search.workers slots."""
    head_address: str | None = None
    """ray: this machine's address as worker nodes reach it (Ray's driver and the gateway relay use it);
    None: the address Ray picks for this machine."""
    relay_port: int = Field(0, ge=0, le=65535)
    """ray: TCP port of the gateway relay that worker nodes call (0 = any free port)."""
    max_attempts: int = Field(3, ge=1)
    """Dispatches of one job whose worker died before it is booked infra_error (Ray's own retries are off)."""
    deadline_slack_s: float = Field(600.0, ge=0)
    """A job is cancelled once it ran this long past the sum of its sandbox timeouts (head-side deadline)."""


class LLMConfig(Section):
    self_improve: str = "deepseek-chat"
    """Model the parent agent uses while rewriting its own code."""
    downstream: str = "deepseek-chat"
    """Model an agent uses while solving benchmark tasks."""
    diagnose: str = "deepseek-chat"
    """Model that diagnoses a failed task into a self-improvement problem statement."""
    base_url: str | None = None
    """Override the provider's base URL (any OpenAI-compatible server)."""
    request_timeout_s: float = Field(600.0, gt=0)
    """Upstream timeout of one chat-completion request."""
    max_retries: int = Field(5, ge=0)
    """Retries of an upstream 429 / 5xx / timeout before the call fails."""
    backoff_initial_s: float = Field(2.0, ge=0)
    """First retry delay; doubles each retry."""
    backoff_max_s: float = Field(60.0, ge=0)
    """Longest retry delay."""
    cassette: Path | None = None
    """Record every exchange to this file (or replay it, see cassette_mode)."""
    cassette_mode: Literal["record", "replay"] = "record"
    """record: forward upstream and append; replay: answer from the cassette, no upstream."""
    providers_file: Path | None = None
    """Provider table merged over hgm/configs/providers.yaml (default: ~/.config/hgm/providers.yaml if present)."""
    preflight: bool = True
    """Before the first job, resolve and connect to each model's endpoint (DNS, TCP, TLS; no request,
    nothing billed) and stop at once, naming the cause, when one cannot be reached. Turn it off for a
    server reached in a way the check cannot see (e.g. an air-gapped host behind a custom transport)."""

    @property
    def request_worst_case_s(self) -> float:
        """How long one request through the gateway can take with all its retries and backoffs."""
        return (self.request_timeout_s + self.backoff_max_s) * (self.max_retries + 1)


class SandboxConfig(Section):
    backend: Literal["bwrap", "docker", "none"] = "bwrap"
    """Where untrusted code runs. `none` is an unsandboxed subprocess, for debugging only."""
    memory_mb: int = Field(4096, ge=64)
    """Memory limit of one sandboxed command."""
    pids: int = Field(512, ge=8)
    """Process/thread limit of one sandboxed command."""
    file_size_mb: int = Field(512, ge=1)
    """Largest file a sandboxed command may write."""
    output_bytes: int = Field(1_000_000, ge=1024)
    """Stdout/stderr kept per stream; the rest is dropped and marked truncated."""
    agent_timeout_s: float = Field(1800.0, gt=0)
    """Wall-clock limit of one agent run on a task or on its own code."""
    test_timeout_s: float = Field(180.0, gt=0)
    """Wall-clock limit of one test command."""
    validate_timeout_s: float = Field(300.0, gt=0)
    """Wall-clock limit of each check of a rewritten agent (compile, --help, its own tests)."""
    docker_image: str = "hgm-eval:latest"
    """Image of the docker backend (`hgm docker build` makes it)."""
    system_paths: list[Path] = []
    """bwrap: extra host paths bound read-only at the same place, added to the computed system
    dirs and toolchain prefixes (e.g. a Python install a venv was built from)."""


class BenchmarkConfig(Section):
    name: str = "polyglot"
    """Benchmark to run on, by its name in hgm/benchmarks/registry.py: polyglot (Aider's Polyglot) or
    swe-bench (SWE-bench, graded by the swebench package)."""

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        from hgm.benchmarks.registry import BENCHMARKS

        if name not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
        return name
    path: Path | None = None
    """Polyglot: local benchmark tree; default: the copy `hgm benchmark fetch` put in the cache dir."""
    subset: str = "small"
    """Task subset. Polyglot: small (10), medium (50) or all. SWE-bench: verified-10 (= small), verified-50
    (= medium), verified-60, verified-140 (= big), all, or a file of instance ids."""
    task_ids: list[str] = []
    """Explicit task ids (lang__name, or SWE-bench instance ids); overrides subset when non-empty."""
    dataset: str = "verified"
    """SWE-bench instances: verified, lite, full (Hugging Face Hub), any Hub dataset id, a local
    .json/.jsonl/.parquet file, or a task-repo directory (the swebench package's layout)."""
    split: str = "test"
    """SWE-bench: the dataset split to load from the Hub."""
    target: TargetSpec | None = None
    """The target of a `--target DIR` run (name target): DIR/target.yaml as read at the run's start."""
    build_base: str | None = None
    """SWE-bench task repos: base image passed as BASE to their Dockerfiles (e.g. localhost/debian:bookworm
    without a registry); None keeps each Dockerfile's default."""


class BudgetConfig(Section):
    max_usd_run: float | None = Field(None, ge=0)
    """Dollar cap of the run's LLM calls (known prices only; None = no cap). It holds with work in
    flight: each request reserves the most it can cost before it is sent; once a request cannot
    fit, no new LLM calls are made and the run ends."""
    max_tokens_run: int | None = Field(None, ge=0)
    """Token cap (input + output, every model) of the run, held like max_usd_run; the only bound on
    models whose price is unknown (None = no cap)."""
    max_usd_session: float | None = None
    """Cap per agent session (one agent run on one task or on its own code)."""
    max_tokens_session: int | None = None
    """Token cap (input + output) per agent session."""


class SteerConfig(Section):
    """A person in the loop (hgm/steering.py, `hgm steer`)."""

    approve: Literal["none", "rewrites"] = "none"
    """rewrites: every new child waits, neither evaluated nor chosen as a parent, until a person
    approves it (`hgm steer RUN approve NODE`) or rejects it; none: children are evaluated at once."""
    approve_timeout_s: float | None = Field(None, gt=0)
    """With approve = rewrites: decide a child nobody decided within this many seconds of its
    creation (recorded with who = timeout); null: wait for a person however long it takes."""
    approve_timeout_action: Literal["approve", "reject"] = "reject"
    """What approve_timeout_s decides."""

    @property
    def gates_rewrites(self) -> bool:
        """Whether new children wait for a person's approval."""
        return self.approve == "rewrites"


class HGMConfig(Section):
    search: SearchConfig = SearchConfig()
    llm: LLMConfig = LLMConfig()
    sandbox: SandboxConfig = SandboxConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    budget: BudgetConfig = BudgetConfig()
    executor: ExecutorConfig = ExecutorConfig()
    steer: SteerConfig = SteerConfig()


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"config file not found: {path}  (give an existing YAML file to -c, or omit -c)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections (search:, llm:, ...)")
    return data


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise UserError(f"override {override!r} must look like section.key=value (e.g. search.alpha=0.5)")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"override {override!r}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None


def load_config(path: Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> HGMConfig:
    """Default config, then the file at `path` merged on top, then `section.key=value` overrides."""
    data = _read_yaml(DEFAULT_CONFIG)
    if path is not None:
        data = _merge(data, _read_yaml(Path(path)))
    for override in overrides:
        apply_override(data, override)
    try:
        return HGMConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise UserError(f"invalid configuration: {problems}") from None


def set_keys(config: HGMConfig, values: Mapping[str, object]) -> None:
    """Set `section.key` values from command-line flags on a loaded config (None: not given), each
    validated; a bad value is a UserError naming it."""
    try:
        for key, value in values.items():
            if value is not None:
                section, name = key.split(".")
                setattr(getattr(config, section), name, value)
    except ValueError as e:
        raise UserError(f"bad option: {e}") from None


def dump_config(config: HGMConfig) -> str:
    """The resolved config as YAML (what a run directory's config.yaml holds)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
