"""`hgm solve`: run one agent (the seed agent, a directory, or a node of a run) on the user's own
repository and problem, in the sandbox, through the LLM gateway, and write the resulting patch.

The user's repository is never given to the agent: the tree at `--rev` (default HEAD; tracked files
only, as `git archive` exports them) is copied into a fresh one-commit workspace, the agent edits
that copy in the sandbox (no network, no key: the gateway's socket and a session token), and the
harness takes the diff with a git directory of its own (never the agent-writable .git of the copy).
The user's working tree changes only with `--apply` (`git apply` of the patch).

OUT (default ./hgm-solve/REPO-TIME) receives patch.diff, agent/chat.md (the agent's chat log),
agent/statement.md, agent_stdout.txt, agent_stderr.txt, llm_calls.jsonl (every LLM exchange with
tokens and cost) and summary.json.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from hgm.agent_runtime import AgentLLM, run_agent
from hgm.archive import Archive
from hgm.config import HGMConfig
from hgm.domain import MetaKey
from hgm.errors import UserError
from hgm.llm.gateway import Gateway
from hgm.llm.providers import check_llm
from hgm.paths import INITIAL_AGENT, resolve_agent_dir
from hgm.sandbox import get_sandbox, limits_from
from hgm.store import DB_NAME, RunStore

ROLE = "solve"
"""The gateway session's role (recorded in llm_calls.jsonl)."""
_LANGUAGES = {".py": "python", ".rs": "rust", ".go": "go", ".js": "javascript", ".ts": "javascript",
              ".java": "java", ".cpp": "cpp", ".cc": "cpp", ".hpp": "cpp", ".h": "cpp", ".c": "cpp"}


@dataclass(frozen=True)
class SolveResult:
    agent: str
    repo: str
    rev: str
    base_commit: str
    model: str
    patch: str
    """Path of patch.diff (empty file when the agent changed nothing)."""
    changed_files: int
    applied: bool
    exit_code: int
    timed_out: bool
    agent_s: float
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    llm_failure: str | None
    """Why the gateway cut the agent off (budget, upstream down), if it did."""
    out_dir: str


def run_of(spec: str) -> Path | None:
    """The run directory of a `RUN:NODE` / `RUN:final` spec, else None."""
    if spec == "initial" or Path(spec).expanduser().is_dir():
        return None
    run, sep, _ = spec.rpartition(":")
    return Path(run).expanduser() if sep and run and (Path(run).expanduser() / DB_NAME).is_file() else None


def agent_from_spec(spec: str, dest: Path) -> tuple[Path, str]:
    """(agent directory, a description) for `initial`, a directory, `RUN:NODE` or `RUN:final`;
    agents from a run's archive are exported into `dest`."""
    run = run_of(spec)
    if run is None:
        if ":" in spec and not Path(spec).expanduser().exists():
            raise UserError(f"{spec.rpartition(':')[0]} is not an hgm run directory (no {DB_NAME}); give "
                            "RUN:NODE or RUN:final with a run directory, `initial`, or an agent directory")
        path = resolve_agent_dir(spec)
        return path, "the initial agent" if path == INITIAL_AGENT.resolve() else str(path)
    node = spec.rpartition(":")[2]
    if node == "final":
        with RunStore.open(run, readonly=True) as store:
            final = store.get_meta(MetaKey.FINAL_AGENT)
        if final is None:
            raise UserError(f"{run} has not named a final agent yet (still running, stopped or killed); give "
                            f"{run}:NODE instead (`hgm show-tree {run}` lists the nodes)")
        node = final
    if not (run / "archive").is_dir():
        raise UserError(f"{run} has no agent archive (archive/): a simulated run stores no code; give a run "
                        "made by `hgm run`")
    archive = Archive.open(run / "archive")
    sha = archive.resolve_agent(node)
    return archive.export(sha, dest), f"node {node} of {run} (commit {sha[:12]})"


def guess_language(paths: list[str]) -> str:
    counts = Counter(_LANGUAGES[s] for p in paths if (s := Path(p).suffix) in _LANGUAGES)
    return counts.most_common(1)[0][0] if counts else "python"


def _git(repo: Path, *args: str, data: bool = False) -> str | bytes:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=not data)
    if proc.returncode != 0:
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
        raise UserError(f"git {' '.join(args[:2])} in {repo} failed: {err.strip()}")
    out: str | bytes = proc.stdout
    return out


def _repo_tree(repo: Path, rev: str, dest: Path) -> tuple[str, list[str]]:
    """Extract the tracked files of `rev` into `dest`; (full sha, paths)."""
    if not (repo / ".git").exists() and subprocess.run(["git", "-C", str(repo), "rev-parse", "--git-dir"],
                                                        capture_output=True).returncode != 0:
        raise UserError(f"{repo} is not a git repository; hgm solve works on a commit of a git repository "
                        "(`git init && git add -A && git commit -m base` makes one)")
    try:
        sha = str(_git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}")).strip()
    except UserError:
        raise UserError(f"no commit {rev!r} in {repo}; give --rev a branch, tag or commit "
                        "(a repository without commits needs one first)") from None
    dest.mkdir(parents=True)
    if not str(_git(repo, "ls-tree", "--name-only", sha)).strip():
        return sha, []  # a commit with no files: the agent starts from nothing (git's tar of it has no header)
    tar = _git(repo, "archive", "--format=tar", sha, data=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:  # type: ignore[arg-type]
        t.extractall(dest, filter="data")
        names = [m.name for m in t.getmembers() if m.isfile()]
    return sha, names


def solve(agent_spec: str, repo: Path, statement: str, *, config: HGMConfig, out_dir: Path, rev: str = "HEAD",
          language: str | None = None, apply: bool = False, console: Console | None = None) -> SolveResult:
    """Run the agent on a copy of `repo` at `rev`; write the patch and logs to `out_dir`."""
    repo = Path(repo).expanduser().resolve()
    if not repo.is_dir():
        raise UserError(f"--repo {repo} is not a directory; give the path of a git repository")
    if not statement.strip():
        raise UserError("the problem statement is empty; give --issue FILE or --statement TEXT")
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} is not empty; give -o/--output a new directory")
    model = config.llm.downstream
    with tempfile.TemporaryDirectory(prefix="hgm-solve-") as tmp_name:
        tmp = Path(tmp_name)
        # Every check (agent, repository, model key, sandbox) before anything is written to OUT.
        agent_dir, agent_text = agent_from_spec(agent_spec, tmp / "agent")
        sha, paths = _repo_tree(repo, rev, tmp / "tree")
        check_llm(config.llm, [model])
        sandbox = get_sandbox(config.sandbox.backend, config.sandbox)
        out_dir.mkdir(parents=True, exist_ok=True)
        harness = Archive.create(tmp / "harness.git")  # the harness's own git: the diff never trusts the copy's
        base = harness.commit_dir(tmp / "tree", f"{repo.name} at {sha[:12]}", parent=None)
        workspace = harness.export_repo(base, tmp / repo.name)
        ws_base = subprocess.run(["git", "-C", str(workspace), "rev-parse", "HEAD"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        calls = out_dir / "llm_calls.jsonl"
        lock = threading.Lock()

        def record(**call: object) -> None:
            with lock, calls.open("a") as f:
                f.write(json.dumps(call) + "\n")

        with Gateway(tmp / "gw.sock", llm=config.llm, budget=config.budget, recorder=record) as gateway:
            token = gateway.open_session(ROLE, model)
            try:
                run = run_agent(
                    agent_dir,
                    workspace,
                    ws_base,
                    statement,
                    language=language or guess_language(paths),
                    llm=AgentLLM(gateway.socket_path, token, model, gateway.context_window(model)),
                    sandbox=sandbox,
                    limits=limits_from(config.sandbox),
                    timeout_s=config.sandbox.agent_timeout_s,
                    log_dir=out_dir,
                    console=console,
                )
            finally:
                usage = gateway.close_session(token)
        solution = harness.commit_dir(workspace, "solution", parent=base)
        patch = harness.repo.git.diff("--binary", base, solution)
        changed = len(harness.repo.git.diff("--name-only", base, solution).split())
    patch_path = out_dir / "patch.diff"
    patch_path.write_text(patch + ("\n" if patch and not patch.endswith("\n") else ""))
    applied = False
    if apply and patch.strip():
        check = subprocess.run(
            ["git", "-C", str(repo), "apply", "--check", str(patch_path)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise UserError(f"the patch does not apply to {repo}'s working tree ({check.stderr.strip()}); it is "
                            f"saved at {patch_path}: apply it by hand, or commit or stash your changes and retry")
        _git(repo, "apply", str(patch_path))
        applied = True
    result = SolveResult(agent_text, str(repo), rev, sha, model, str(patch_path), changed, applied, run.exit_code,
                         run.timed_out, run.duration_s, usage.prompt_tokens, usage.completion_tokens, usage.cost_usd,
                         usage.failure, str(out_dir))
    (out_dir / "summary.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result
