"""Targets (`hgm run --target DIR`): target.yaml errors, one evaluation's booking in a real bwrap
sandbox (scorer faults, writes outside the outputs, time limits, a hostile and a forging target),
and both examples end to end with the scripted LLM (a tree grows, fractional scores land, show-tree,
the report and compare read them, the rewriter gets DARWIN's memory file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from hgm.benchmarks.target.benchmark import TargetBenchmark
from hgm.benchmarks.target.spec import load_target
from hgm.domain import ErrorType, EvalStatus
from hgm.errors import UserError
from hgm.sandbox import get_sandbox
from hgm.sandbox.base import Limits
from hgm.store import RunStore

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MARKER = "HIDDEN-MARKER-7f3a"
PLAN = {"log_summary": "It scored low.", "root_cause": "Its constants are untuned.", "improvement": "Tune them.",
        "implementation": "Change the constants.", "problem_statement": "Change the constants so it scores higher.",
        "title": "Tune the constants"}


def make_target(root: Path, entry: str, scorer: str, **spec: object) -> Path:
    """root/target (entry.py, target.yaml), root/scorer/score.py, root/hidden/secret.txt."""
    for d in ("target", "scorer", "hidden"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "target" / "entry.py").write_text(textwrap.dedent(entry))
    (root / "scorer" / "score.py").write_text(textwrap.dedent(scorer))
    (root / "hidden" / "secret.txt").write_text(f"{MARKER}\n")
    data = {"entry": ["python3", "entry.py"], "outputs": ["out.txt"], "cases": [{"id": "c1", "seed": 1}],
            "scorer": {"command": ["python3", "score.py"], "dir": "../scorer", "hidden": "../hidden", "timeout_s": 20},
            "entry_timeout_s": 20, **spec}
    (root / "target" / "target.yaml").write_text(yaml.safe_dump(data))
    return root / "target"


WRITE_OUT = """
import os, pathlib
pathlib.Path(os.environ["HGM_OUTPUT_DIR"], "out.txt").write_text("hello")
"""
SCORE_HALF = """
import json
print(json.dumps({"score": 0.5}))
"""


def evaluate(target: Path, tmp: Path):
    bench = TargetBenchmark(load_target(target))
    log = tmp / "log"
    log.mkdir(exist_ok=True)
    return bench.evaluate_node(target, bench.task("c1"), sandbox=get_sandbox("bwrap"), limits=Limits(),
                               log_dir=log, llm_env={}, llm_mounts=[]), log


def test_target_yaml_errors_say_what_to_fix(tmp_path: Path) -> None:
    target = make_target(tmp_path, WRITE_OUT, SCORE_HALF)
    spec = yaml.safe_load((target / "target.yaml").read_text())
    (target / "target.yaml").write_text(yaml.safe_dump({k: v for k, v in spec.items() if k != "entry"}))
    with pytest.raises(UserError, match="no entry command"):
        load_target(target)
    (target / "target.yaml").write_text(yaml.safe_dump({**spec, "scorer": {**spec["scorer"], "hidden": "data"}}))
    (target / "data").mkdir()
    with pytest.raises(UserError, match="must be outside the target directory"):
        load_target(target)
    with pytest.raises(UserError, match="holding target.yaml|has no target.yaml"):
        load_target(tmp_path / "scorer")
    (target / "target.yaml").write_text(yaml.safe_dump(spec))
    assert load_target(target, ["target.entry_timeout_s=5"]).entry_timeout_s == 5


def test_a_score_lands_and_scorer_faults_are_infra_errors(tmp_path: Path) -> None:
    good, _ = evaluate(make_target(tmp_path / "a", WRITE_OUT, SCORE_HALF), tmp_path / "a")
    assert (good.status, good.score) == (EvalStatus.SCORED, 0.5)
    for name, scorer, why in [
        ("crash", "raise SystemExit('boom')", "the scorer exited 1"),
        ("nojson", "print('all good')", "no JSON object"),
        ("outside", "print('{\"score\": 1.5}')", "outside [0, 1]"),
    ]:
        result, _ = evaluate(make_target(tmp_path / name, WRITE_OUT, scorer), tmp_path / name)
        assert result.status == EvalStatus.INFRA_ERROR and result.error_type == ErrorType.SCORER_FAILED, name
        assert why in result.detail, (name, result.detail)


def test_threshold_rule_turns_a_raw_metric_into_solved_or_failed(tmp_path: Path) -> None:
    scorer = "print('{\"loss\": 1.7}')"
    low = make_target(tmp_path / "low", WRITE_OUT, scorer, score={"key": "loss", "threshold": 2.0, "better": "lower"})
    assert evaluate(low, tmp_path / "low")[0].status == EvalStatus.SOLVED
    high = make_target(tmp_path / "high", WRITE_OUT, scorer, score={"key": "loss", "threshold": 2.0})
    assert evaluate(high, tmp_path / "high")[0].status == EvalStatus.FAILED


def test_writes_outside_the_outputs_are_discarded_and_recorded_and_time_limits_hold(tmp_path: Path) -> None:
    entry = """
    import os, pathlib
    out = pathlib.Path(os.environ["HGM_OUTPUT_DIR"])
    (out / "out.txt").write_text("hello")
    (out / "extra.txt").write_text("not declared")
    pathlib.Path("entry.py").write_text("# rewritten by itself")
    """
    scorer = """
    import json, os
    print(json.dumps({"score": 1.0 if sorted(os.listdir(os.environ["HGM_OUTPUTS_DIR"])) == ["out.txt"] else 0.0}))
    """
    target = make_target(tmp_path / "w", entry, scorer)
    result, log = evaluate(target, tmp_path / "w")
    assert result.score == 1.0  # the scorer saw the declared output only
    assert "discarded 2 writes" in result.detail
    assert (log / "outside_outputs.txt").read_text().split("\n")[:2] == [
        "changed in its directory: entry.py", "undeclared output: extra.txt"]
    assert (target / "entry.py").read_text() != "# rewritten by itself"  # the node's own code is untouched
    slow = make_target(tmp_path / "s", "import time\ntime.sleep(60)\n", SCORE_HALF, entry_timeout_s=1)
    result, _ = evaluate(slow, tmp_path / "s")
    assert result.status == EvalStatus.FAILED and "time limit (1 s)" in result.detail


def test_a_hostile_target_finds_no_hidden_data_and_a_forged_score_gains_nothing(tmp_path: Path) -> None:
    hidden = tmp_path / "h" / "hidden"
    hostile = f"""
    import json, os, pathlib
    found = []
    for probe in ({str(hidden)!r}, {str(hidden / "secret.txt")!r}, {str(tmp_path / "h" / "scorer")!r}):
        if os.path.exists(probe):
            found.append(probe)
    for top in ("/", os.path.expanduser("~"), "/tmp"):
        for dirpath, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if os.path.join(dirpath, d) not in ("/proc", "/sys", "/usr", "/dev")]
            found += [os.path.join(dirpath, f) for f in files if f == "secret.txt"]
    print("FOUND", json.dumps(found))
    out = pathlib.Path(os.environ["HGM_OUTPUT_DIR"])
    (out / "out.txt").write_text("my answer")
    (out / "score.json").write_text('{{"score": 1.0}}')
    print(json.dumps({{"score": 1.0}}))
    """
    scorer = f"""
    import json, os, pathlib
    secret = pathlib.Path(os.environ["HGM_HIDDEN_DIR"], "secret.txt").read_text().strip()
    answer = pathlib.Path(os.environ["HGM_OUTPUTS_DIR"], "out.txt").read_text()
    print(json.dumps({{"score": 1.0 if answer == secret else 0.0, "saw_secret": secret == {MARKER!r}}}))
    """
    result, log = evaluate(make_target(tmp_path / "h", hostile, scorer), tmp_path / "h")
    printed = (log / "entry_output.txt").read_text()
    assert 'FOUND []' in printed and MARKER not in printed
    assert (result.status, result.score) == (EvalStatus.SCORED, 0.0)  # the forged score on stdout counts for nothing
    assert json.loads((log / "test_output.txt").read_text().split("\n", 1)[1])["saw_secret"] is True


def _scripts(tmp: Path, rewrite: str) -> list[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "diagnose.json").write_text(json.dumps({"responses": [{"content": f"```json\n{json.dumps(PLAN)}\n```"}]}))
    (tmp / "rewrite.json").write_text(json.dumps({
        "rules": [{"match": "Improve this program", "content": "Changing it.",
                   "tool_calls": [{"name": "bash", "arguments": {"command": rewrite}}]}],
        "responses": [{"content": "Done."}]}))
    return [
        "--diagnose-llm",
        f"scripted:{tmp / 'diagnose.json'}",
        "--self-improve-llm",
        f"scripted:{tmp / 'rewrite.json'}",
    ]


def hgm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "hgm.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


def test_char_lm_example_grows_a_tree_of_scored_versions(tmp_path: Path) -> None:
    rewrite = ("sed -i \"s/^HIDDEN = .*/HIDDEN = $((RANDOM % 48 + 16))/; s/^LR = .*/LR = 0.$((RANDOM % 6 + 1))/\" "
               "train.py && cat HGM_MEMORY.json")
    run = tmp_path / "run"
    done = hgm("run", "--target", str(EXAMPLES / "char-lm" / "target"), *_scripts(tmp_path / "s", rewrite),
               "--max-task-evals", "8", "--run-dir", str(run))
    assert done.returncode == 0, done.stdout + done.stderr
    with RunStore.open(run, readonly=True) as store:
        scores = [e.score for e in store.evaluations() if e.status == EvalStatus.SCORED]
        nodes = store.nodes()
    assert len(scores) == 8 and all(s is not None and 0 < s < 1 for s in scores)
    assert len(nodes) >= 2
    tree = json.loads(hgm("show-tree", str(run), "--format", "json").stdout)
    assert sum(n["solved"] for n in tree) == pytest.approx(sum(s for s in scores if s is not None))
    memory = json.loads(next(run.glob("nodes/*/expansions/*/memory.json")).read_text())
    assert memory["lineage"][0] == 1 and "modifications" in memory
    assert "root_score" in next(run.glob("nodes/*/expansions/*/agent/chat.md")).read_text()  # the rewriter read it
    archive = run / "archive"
    files = subprocess.run(["git", "-C", str(archive), "ls-tree", "-r", "--name-only", "node-2"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert "train.py" in files and "HGM_MEMORY.json" not in files
    assert hgm("report", str(run)).returncode == 0
    page = (run / "report.html").read_text()
    assert "scored" in page and "Memory the rewriter was given" in page
    compared = hgm("compare", str(run), "-o", str(tmp_path / "compare.html"))
    assert compared.returncode == 0, compared.stderr


def test_qa_example_runs_with_its_cases_file(tmp_path: Path) -> None:
    rewrite = "sed -i 's/^DROP_QUESTION_WORDS = False/DROP_QUESTION_WORDS = True/' answer.py"
    run = tmp_path / "run"
    done = hgm("run", "--target", str(EXAMPLES / "qa-agent" / "target"), *_scripts(tmp_path / "s", rewrite),
               "--max-task-evals", "10", "--run-dir", str(run))
    assert done.returncode == 0, done.stdout + done.stderr
    with RunStore.open(run, readonly=True) as store:
        by_node: dict[int, list[float]] = {}
        for e in store.evaluations():
            if e.status == EvalStatus.SCORED and e.score is not None:
                by_node.setdefault(e.node_id, []).append(e.score)
    root = by_node[1]
    children = [s for n, scores in by_node.items() if n != 1 for s in scores]
    assert len(root) + len(children) == 10 and children
    assert max(children) > max(root)  # answering with the new words only scores higher than the whole sentence


ASK_LLM = '''
import http.client, json, os, pathlib, socket

class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(os.environ["HGM_LLM_SOCKET"])

case = json.loads(os.environ["HGM_CASE"])
conn = UnixConnection("localhost")
body = {"model": os.environ["HGM_LLM_MODEL"], "messages": [{"role": "user", "content": case["question"]}]}
conn.request("POST", "/v1/chat/completions", json.dumps(body),
             {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"})
reply = json.loads(conn.getresponse().read())
answer = reply["choices"][0]["message"]["content"]
pathlib.Path(os.environ["HGM_OUTPUT_DIR"], "out.txt").write_text(answer)
print("key looks like a session token:", not os.environ["OPENAI_API_KEY"].startswith("sk-"))
'''
SCORE_EXACT = """
import json, os, pathlib
answer = pathlib.Path(os.environ["HGM_OUTPUTS_DIR"], "out.txt").read_text().strip()
print(json.dumps({"score": 1.0 if answer == "Paris" else 0.0}))
"""


def test_an_llm_target_reaches_the_gateway_and_only_then(tmp_path: Path) -> None:
    """llm: true: the entry gets the gateway socket and a session token (role downstream), the call is
    booked in the store; without it the same entry has no socket and fails (no network either)."""
    target = make_target(tmp_path / "t", ASK_LLM, SCORE_EXACT, llm=True,
                         cases=[{"id": "c1", "question": "What is the capital of France?"}])
    (tmp_path / "answer.json").write_text(json.dumps({"responses": [{"content": "Paris", "repeat": 10}]}))
    run = tmp_path / "run"
    done = hgm("run", "--target", str(target), *_scripts(tmp_path / "s", "true"), "--downstream-llm",
               f"scripted:{tmp_path / 'answer.json'}", "--max-task-evals", "1", "--run-dir", str(run))
    assert done.returncode == 0, done.stdout + done.stderr
    with RunStore.open(run, readonly=True) as store:
        [evaluation] = store.evaluations()
        assert (evaluation.status, evaluation.score) == (EvalStatus.SCORED, 1.0)
        assert store.llm.usage(role="downstream").calls == 1
    assert "session token: True" in (run / evaluation.log_dir / "entry_output.txt").read_text()
    offline = make_target(tmp_path / "o", ASK_LLM, SCORE_EXACT, cases=[{"id": "c1", "question": "?"}])
    result, _ = evaluate(offline, tmp_path / "o")
    assert result.status == EvalStatus.FAILED and "KeyError: \'HGM_LLM_" in result.detail  # no gateway variables


@pytest.mark.slow
def test_a_coding_agent_target_rewrites_itself(tmp_path: Path) -> None:
    """rewriter: self (HGM's setting): the target is a coding agent; its own coding_agent.py rewrites
    its code (the self-improvement statement), the child passes the agent validation."""
    import shutil

    from hgm.paths import INITIAL_AGENT

    root = tmp_path / "t"
    make_target(root, WRITE_OUT, SCORE_HALF, rewriter="self")
    agent = root / "agent"
    shutil.copytree(INITIAL_AGENT, agent, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "target" / "entry.py", agent / "entry.py")
    spec = yaml.safe_load((root / "target" / "target.yaml").read_text())
    (agent / "target.yaml").write_text(yaml.safe_dump(spec))
    models = dict(zip(["diagnose", "self_improve"], _scripts(tmp_path / "s", "true")[1::2], strict=True))
    script = json.loads(Path(models["self_improve"].removeprefix("scripted:")).read_text())
    script["rules"][0]["match"] = "Improve this coding agent"
    script["rules"][0]["tool_calls"][0]["arguments"]["command"] = \
        "printf '\\n# lesson: check the output file\\n' >> prompts.py"
    Path(models["self_improve"].removeprefix("scripted:")).write_text(json.dumps(script))
    run = tmp_path / "run"
    done = hgm(
        "run",
        "--target",
        str(agent),
        "--diagnose-llm",
        models["diagnose"],
        "--self-improve-llm",
        models["self_improve"],
        "--max-task-evals",
        "2",
        "--run-dir",
        str(run),
        "--set",
        "search.initial_evals=1",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with RunStore.open(run, readonly=True) as store:
        nodes = store.nodes()
        scored = [e.score for e in store.evaluations() if e.status == EvalStatus.SCORED]
    assert len(nodes) >= 2 and scored == [0.5, 0.5]
    statement = next(run.glob("nodes/1/expansions/*/agent/statement.md")).read_text()
    assert "Improve this coding agent" in statement
    assert "lesson: check the output file" in next(run.glob("nodes/1/expansions/*/patch.diff")).read_text()
