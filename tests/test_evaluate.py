"""One task evaluation end to end: the real agent, gateway, bwrap sandbox and Python toolchain,
driven by the scripted LLM (tasks: python__transpose, whose tests take ~1 s)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from hgm.benchmarks import get_benchmark
from hgm.config import BenchmarkConfig, load_config
from hgm.domain import EvalStatus
from hgm.evaluate import evaluate
from hgm.llm.gateway import Gateway
from hgm.sandbox import get_sandbox
from hgm.store import RunStore

INITIAL_AGENT = Path(__file__).resolve().parents[1] / "hgm" / "agents" / "initial"
TASK = "python__transpose"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def benchmark(polyglot_path):
    return get_benchmark(BenchmarkConfig(path=polyglot_path))


@pytest.fixture(scope="module")
def task(benchmark):
    return benchmark.task(TASK)


@pytest.fixture(scope="module")
def sandbox():
    return get_sandbox("bwrap")


def write_script(path: Path, responses: list[dict]) -> str:
    path.write_text(json.dumps({"responses": responses}))
    return f"scripted:{path}"


def create(file: str, text: str, usage: dict | None = None) -> dict:
    step = {"content": f"Writing {file}.",
            "tool_calls": [{"name": "editor", "arguments": {"command": "create", "path": file, "file_text": text}}]}
    return {**step, "usage": usage} if usage else step


DONE = {"content": "Done."}


class Harness:
    """A run store, a gateway recording into it, and evaluate() with a given script."""

    def __init__(self, tmp_path: Path, benchmark, sandbox, overrides=()):
        self.tmp, self.benchmark, self.sandbox = tmp_path, benchmark, sandbox
        self.task = benchmark.task(TASK)
        self.config = load_config(None, ["llm.backoff_initial_s=0", "llm.max_retries=2",
                                         "sandbox.agent_timeout_s=180", *overrides])
        self.run_dir = tmp_path / "run"
        self.store = RunStore.create(self.run_dir, self.config)
        self.node = self.store.add_node(None, None, "initial")
        self.gateway = Gateway(tmp_path / "gw.sock", llm=self.config.llm, budget=self.config.budget,
                               recorder=self.store.llm.record).start()

    def evaluate(self, responses: list[dict], name: str = "eval", agent: Path = INITIAL_AGENT):
        self.config.llm.downstream = write_script(self.tmp / f"{name}.json", responses)
        eval_id = self.store.start_evaluation(self.node, self.task.id)
        report = evaluate(
            agent,
            self.task,
            benchmark=self.benchmark,
            gateway=self.gateway,
            sandbox=self.sandbox,
            config=self.config,
            log_dir=self.run_dir / "nodes" / str(self.node) / "evals" / name,
            run_dir=self.run_dir,
            node_id=self.node,
        )
        self.store.finish_evaluation(eval_id, report.outcome)
        return report

    def calls(self) -> list[tuple]:
        with sqlite3.connect(self.run_dir / "run.sqlite") as c:
            return c.execute("SELECT session, status, attempts, prompt_tokens, completion_tokens "
                             "FROM llm_calls ORDER BY id").fetchall()


@pytest.fixture
def harness(tmp_path, benchmark, sandbox):
    h = Harness(tmp_path, benchmark, sandbox)
    yield h
    h.gateway.stop()


def reference(task) -> str:
    return (task.path / ".meta" / "example.py").read_text()


def test_reference_solution_is_solved_and_logged(harness, task):
    report = harness.evaluate([create("transpose.py", reference(task), {"prompt_tokens": 300, "completion_tokens": 40}),
                               DONE])
    o = report.outcome
    assert o.status == EvalStatus.SOLVED, o
    assert o.agent_s > 0 and o.test_s > 0 and o.prompt_tokens >= 300 and o.completion_tokens >= 40
    assert o.log_dir == f"nodes/{harness.node}/evals/eval"
    assert "Writing transpose.py" in report.chat.read_text() and "Created transpose.py" in report.chat.read_text()
    assert "transpose.py" in report.patch.read_text()
    usage = harness.store.llm.usage(task_id=task.id)  # the store agrees with the outcome
    assert (usage.prompt_tokens, usage.completion_tokens) == (o.prompt_tokens, o.completion_tokens)
    [row] = harness.store.evaluations()
    assert row.status == EvalStatus.SOLVED


def test_writing_nothing_is_an_empty_patch(harness):
    assert harness.evaluate([{"content": "I cannot do this."}]).outcome.status == EvalStatus.EMPTY_PATCH


def test_wrong_code_fails(harness):
    wrong = "def transpose(text):\n    return text\n"
    report = harness.evaluate([create("transpose.py", wrong), DONE])
    assert report.outcome.status == EvalStatus.FAILED, report.outcome
    assert "failed" in report.test_output.read_text().lower()
    assert "def transpose(text):" in report.patch.read_text()


def test_upstream_500_then_success_is_solved_with_the_retry_recorded(harness, task):
    report = harness.evaluate([{"fault": 500}, create("transpose.py", reference(task)), DONE])
    assert report.outcome.status == EvalStatus.SOLVED, report.outcome
    assert [c[1:3] for c in harness.calls()] == [("ok", 2), ("ok", 1)]


def test_upstream_down_for_good_is_an_infra_error_not_a_failure(harness):
    report = harness.evaluate([{"fault": 500, "repeat": 100}])
    o = report.outcome
    assert o.status == EvalStatus.INFRA_ERROR and o.error_type == "UpstreamFailed", o
    assert "upstream_failed" in {c[1] for c in harness.calls()}
    assert harness.calls()[0][2] == 3  # 1 try + llm.max_retries


def test_a_sandbox_that_cannot_start_is_an_infra_error(harness):
    harness.gateway.stop()  # its socket is gone: the sandbox cannot mount it and refuses to start
    report = harness.evaluate([DONE])
    o = report.outcome
    assert o.status == EvalStatus.INFRA_ERROR and o.error_type == "SandboxUnavailable", o
    assert "gw.sock" in o.error and report.agent is None
    [row] = harness.store.evaluations()
    assert row.status == EvalStatus.INFRA_ERROR


def test_budget_cap_stops_the_session_and_later_work_goes_on(tmp_path, benchmark, task, sandbox):
    h = Harness(tmp_path, benchmark, sandbox, ["budget.max_tokens_session=1000"])
    try:
        big = {"prompt_tokens": 900, "completion_tokens": 200}
        first = h.evaluate([create("transpose.py", reference(task), big), create("other.py", "x = 1\n"), DONE],
                           name="capped")
        assert first.usage.over_budget and "token budget" in first.usage.failure
        assert first.outcome.status == EvalStatus.SOLVED  # scored on what the agent left
        assert first.outcome.prompt_tokens == 900
        assert [c[1] for c in h.calls()] == ["ok", "over_budget"]  # the 2nd request was refused
        assert "other.py" not in first.patch.read_text()
        small = {"prompt_tokens": 100, "completion_tokens": 10}
        second = h.evaluate([create("transpose.py", reference(task), small), {**DONE, "usage": small}], name="next")
        assert second.outcome.status == EvalStatus.SOLVED and not second.usage.over_budget
        assert [e.status for e in h.store.evaluations()] == [EvalStatus.SOLVED, EvalStatus.SOLVED]
    finally:
        h.gateway.stop()


def test_the_runs_budget_cutting_the_agent_off_is_an_infra_error(tmp_path, benchmark, sandbox):
    h = Harness(tmp_path, benchmark, sandbox, ["budget.max_tokens_run=1000"])
    try:  # the first request may use more than the whole run's token cap: refused before it is sent
        report = h.evaluate([create("transpose.py", "x = 1\n"), DONE], name="run-capped")
        assert report.usage.run_capped and "token cap 1000 reached" in report.usage.failure
        o = report.outcome
        assert o.status == EvalStatus.INFRA_ERROR and o.error_type == "RunCostCap", o
        assert "RunCostCap" in (report.log_dir / "outcome.txt").read_text()
        assert [c[1] for c in h.calls()] == ["run_cap"]
        assert [e.status for e in h.store.evaluations()] == [EvalStatus.INFRA_ERROR]
    finally:
        h.gateway.stop()


def fake_agent(tmp_path: Path, body: str) -> Path:
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "requirements.txt").write_text("")
    (agent / "coding_agent.py").write_text(
        "import argparse, pathlib, sys, time\n"
        "ap = argparse.ArgumentParser(); ap.add_argument('--git-dir'); ap.add_argument('--chat-history-file')\n"
        "args, _ = ap.parse_known_args()\n"
        f"ws, chat = pathlib.Path(args.git_dir), pathlib.Path(args.chat_history_file)\n{body}\n")
    return agent


def test_an_agent_that_crashes_is_scored_on_what_it_left(harness, task, tmp_path):
    agent = fake_agent(tmp_path, f"(ws / 'transpose.py').write_text({reference(task)!r})\n"
                                 "chat.symlink_to('/etc/hostname')  # bait for a harness that reads its log\n"
                                 "raise SystemExit(7)")
    report = harness.evaluate([], agent=agent)
    assert report.agent.exit_code == 7 and report.outcome.status == EvalStatus.SOLVED
    assert not report.chat.is_symlink()


def test_an_agent_that_loops_and_floods_is_stopped_and_scored(tmp_path, benchmark, sandbox):
    h = Harness(tmp_path, benchmark, sandbox, ["sandbox.agent_timeout_s=5"])
    try:
        agent = fake_agent(tmp_path, "(ws / 'transpose.py').write_text('broken(')\n"
                                     "while True: sys.stdout.write('x' * 65536)")
        report = h.evaluate([], agent=agent)
        assert report.agent.timed_out and report.agent.output_truncated
        assert report.outcome.status == EvalStatus.FAILED and report.outcome.agent_s < 30
    finally:
        h.gateway.stop()
