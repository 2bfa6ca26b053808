"""Expansions that fail, each kind recorded with its reason, logs and cost (real bwrap, scripted LLM)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hgm.archive import init_archive
from hgm.benchmarks import get_benchmark
from hgm.config import load_config
from hgm.domain import EvalOutcome, EvalStatus, ExpansionStatus
from hgm.expand import Expander, expand_job
from hgm.llm.gateway import Gateway
from hgm.sandbox import get_sandbox
from hgm.store import RunStore

from llm_scripts import write_scripts

INITIAL_AGENT = Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial"
TASKS = ["python__transpose", "python__proverb"]


@pytest.fixture
def make(tmp_path: Path, polyglot_path: Path) -> Iterator:
    gateways: list[Gateway] = []

    def build(diagnose: str = "ok", self_improve: str = "good") -> tuple[Expander, RunStore, int, Gateway]:
        models = write_scripts(tmp_path / f"scripts-{diagnose}-{self_improve}", polyglot_path,
                               diagnose=diagnose, self_improve=self_improve)
        config = load_config(None, [f"benchmark.path={polyglot_path}", f"llm.diagnose={models['diagnose']}",
                                    f"llm.self_improve={models['self_improve']}", "sandbox.agent_timeout_s=240",
                                    f"llm.downstream={models['downstream']}"])
        run = tmp_path / f"run-{diagnose}-{self_improve}"
        store = RunStore.create(run, config)
        archive, sha = init_archive(run / "archive", INITIAL_AGENT)
        root = store.add_node(None, sha, "initial agent")
        archive.set_node(root, sha)
        logs = run / "nodes" / str(root) / "evals" / "python__proverb"
        (logs / "agent").mkdir(parents=True)
        (logs / "agent" / "chat.md").write_text("## Assistant\n\nI could not find the file MARKER-CHAT.\n")
        (logs / "test_output.txt").write_text("FAILED proverb_test.py::test_one MARKER-TESTS\n")
        store.finish_evaluation(store.start_evaluation(root, "python__proverb"),
                                EvalOutcome(EvalStatus.FAILED, log_dir=str(logs.relative_to(run))))
        store.finish_evaluation(store.start_evaluation(root, "python__transpose"), EvalOutcome(EvalStatus.SOLVED))
        benchmark = get_benchmark(config.benchmark)
        gateway = Gateway(tmp_path / f"gw-{len(gateways)}.sock", llm=config.llm, recorder=store.llm.record).start()
        gateways.append(gateway)
        cache = tmp_path / f"agents-{len(gateways)}"
        cache.mkdir()
        expander = Expander(run, archive, gateway, get_sandbox("bwrap"), config, {t: benchmark.task(t) for t in TASKS},
                            cache)
        return expander, store, root, gateway

    yield build
    for g in gateways:
        g.stop()


def expand(expander: Expander, store: RunStore, parent: int, expansion_id: int):
    """The scheduler's half (inputs from the store) then the worker's half, as a run does."""
    job = expand_job(store, expander.log_root, parent_id=parent, commit=store.nodes()[parent - 1].commit,
                     expansion_id=expansion_id, attempt=1, task_ids=TASKS, seed=0,
                     log_dir=f"nodes/{parent}/expansions/{expansion_id}")
    return expander.expand(job)[0]


def test_malformed_diagnosis_is_a_failed_expansion_with_reason(make) -> None:
    expander, store, root, gateway = make(diagnose="malformed")
    x = store.start_expansion(root)
    outcome = expand(expander, store, root, x)
    assert outcome.status == ExpansionStatus.FAILED and outcome.error_type == "DiagnosisFailed"
    assert "malformed answer" in outcome.reason and outcome.entry_task == "python__proverb"
    assert outcome.cost_usd == pytest.approx(2 * (3000 + 400) / 1e6), "both attempts are paid for"
    requests = gateway.scripted_server(expander.config.llm.diagnose).requests
    assert len(requests) == 2, "one retry asking for the JSON object"
    prompt = requests[0]["body"]["messages"][1]["content"]
    for part in ("MARKER-CHAT", "MARKER-TESTS", "## coding_agent.py", "node 1: the initial agent",
                 "solved 1 of 2", "For want of a"):
        assert part in prompt, part
    assert "not the JSON object" in requests[1]["body"]["messages"][-1]["content"]
    log = expander.log_root / outcome.log_dir
    assert (log / "diagnose.md").read_text().count("## answer") == 2 and (log / "outcome.txt").is_file()
    assert [c for c in [store.llm.usage(role="diagnose")] if c.calls == 2]


@pytest.mark.slow
def test_agent_that_changes_nothing_is_an_empty_diff(make) -> None:
    expander, store, root, _ = make(self_improve="noop")
    outcome = expand(expander, store, root, store.start_expansion(root))
    assert outcome.status == ExpansionStatus.FAILED and outcome.error_type == "EmptyDiff", outcome
    assert "empty diff" in outcome.reason
    log = expander.log_root / outcome.log_dir
    assert json.loads((log / "diagnosis.json").read_text())["title"] == "Run the tests before stopping"
    assert "Improve this coding agent" in (log / "agent" / "statement.md").read_text()
    assert store.llm.usage(role="self_improve").calls == 1


@pytest.mark.slow
def test_child_that_does_not_compile_fails_validation_and_is_not_a_node(make) -> None:
    expander, store, root, _ = make(self_improve="break")
    x = store.start_expansion(root)
    outcome = expand(expander, store, root, x)
    assert outcome.status == ExpansionStatus.FAILED and outcome.error_type == "ValidationFailed", outcome
    assert outcome.reason.startswith("validation failed: compile") and "prompts.py" in outcome.reason
    log = expander.log_root / outcome.log_dir
    assert "def broken(:" in (log / "patch.diff").read_text()
    assert "compile: exit 1" in (log / "validation.txt").read_text()
    attempt = expander.archive.resolve(f"refs/hgm/attempts/{x}")  # kept for inspection, not a node
    assert expander.archive.parent_of(attempt) == store.nodes()[0].commit
    assert store.finish_expansion(x, outcome) is None and len(store.nodes()) == 1


@pytest.mark.slow
def test_agent_that_crashes_without_a_change_is_recorded_as_such(make) -> None:
    expander, store, root, _ = make(self_improve="crash")
    outcome = expand(expander, store, root, store.start_expansion(root))
    assert outcome.status == ExpansionStatus.FAILED and outcome.error_type == "AgentCrashed", outcome
    assert "exited 3" in outcome.reason and "LLM error" in outcome.reason
    assert (expander.log_root / outcome.log_dir / "agent_stderr.txt").is_file()
