"""The run's agent archive: a git repository at RUN_DIR/archive where every node is a commit.

The initial agent is the root commit; a child is a commit whose parent is its parent node's
commit. Each node gets a branch `node-<id>`; each committed expansion also gets
`refs/hgm/expansions/<id>` at commit time, so a commit is referenced before the store knows
its node id (nothing is lost if the run dies in between).

Commits are built from a directory with a private index file and plumbing commands
(`add -A`, `write-tree`, `commit-tree`, `update-ref`), so several workers can commit in
parallel without sharing a work tree. Export is `git archive` extracted into a directory,
read-only on the repository and safe in parallel.

Threads: a GitPython `Repo` is not thread-safe (it keeps `git cat-file` processes and caches), so
an `Archive` hands each thread its own `Repo` (`archive.repo`); the plumbing commands run as
separate git processes. Another machine gets commits as git bundles (`bundle` / `import_bundle`).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

import git

from hgm.errors import UserError

# What never belongs in an agent's source: caches and build output that runs leave behind.
IGNORED = ["__pycache__/", "*.pyc", ".pytest_cache/", ".venv/", "venv/", ".mypy_cache/", "*.egg-info/"]
_EPOCH = "2000-01-01T00:00:00Z"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "hgm",
    "GIT_AUTHOR_EMAIL": "hgm@localhost",
    "GIT_COMMITTER_NAME": "hgm",
    "GIT_COMMITTER_EMAIL": "hgm@localhost",
}


def node_ref(node_id: int) -> str:
    return f"refs/heads/node-{node_id}"


class Archive:
    """Git repository of agent versions (bare; nodes are commits, never checked out in place)."""

    def __init__(self, repo: git.Repo):
        self.path = Path(repo.git_dir)
        self._local = threading.local()
        self._local.repo = repo

    @property
    def repo(self) -> git.Repo:
        """This thread's GitPython repository object (never shared between threads)."""
        repo = getattr(self._local, "repo", None)
        if repo is None:
            repo = self._local.repo = git.Repo(self.path)
        return repo

    # -- open / create -------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path) -> Archive:
        """A new empty bare repository at `path` (which must not exist or be empty)."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise UserError(f"archive {path} already exists and is not empty; use a new run directory")
        repo = git.Repo.init(path, bare=True, mkdir=True)
        (path / "info").mkdir(exist_ok=True)
        (path / "info" / "exclude").write_text("\n".join(IGNORED) + "\n")
        with repo.config_writer() as cw:
            cw.set_value("gc", "auto", "0")  # never prune objects behind a running search's back
            cw.set_value("core", "logAllRefUpdates", "true")
        return cls(repo)

    @classmethod
    def open(cls, path: Path) -> Archive:
        path = Path(path)
        try:
            repo = git.Repo(path)
        except (git.NoSuchPathError, git.InvalidGitRepositoryError):
            raise UserError(f"{path} is not an hgm agent archive (no git repository there)") from None
        return cls(repo)

    # -- writing ---------------------------------------------------------------------------
    def commit_dir(self, src: Path, message: str, parent: str | None, ref: str | None = None) -> str:
        """Commit the files under `src` (ignoring caches) as a child of `parent`; return the sha.

        `ref`, when given, is pointed at the new commit (e.g. refs/hgm/expansions/7).
        """
        src = Path(src).resolve()
        with tempfile.TemporaryDirectory(prefix="hgm-index-") as tmp:
            env = {**os.environ, **_IDENTITY, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self._git("--work-tree", str(src), "add", "-A", ".", env=env, cwd=src)
            tree = self._git("write-tree", env=env)
            argv = ["commit-tree", tree, "-m", message or "(no message)"]
            if parent:
                argv += ["-p", parent]
            sha = self._git(*argv, env=env)
        if ref:
            self.set_ref(ref, sha)
        return sha

    def _git(self, *args: str, env: dict[str, str], cwd: Path | None = None) -> str:
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path), *args], env=env, cwd=cwd, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def set_ref(self, ref: str, sha: str) -> None:
        self.repo.git.update_ref(ref, sha)

    def set_node(self, node_id: int, sha: str) -> None:
        """Point branch node-<id> at the node's commit (idempotent)."""
        self.set_ref(node_ref(node_id), sha)

    # -- bundles (commits for and from other machines) --------------------------------------
    def bundle(self, sha: str, *, since: str | None = None) -> bytes:
        """A git bundle holding commit `sha` (with its history, or only what is new since `since`)."""
        env = dict(os.environ)
        name = f"refs/hgm/bundle/{sha[:12]}-{os.getpid()}-{threading.get_ident()}"  # a bundle carries refs
        with tempfile.TemporaryDirectory(prefix="hgm-bundle-") as tmp:
            path = Path(tmp) / "b.bundle"
            self._git("update-ref", name, sha, env=env)
            try:
                self._git("bundle", "create", "-q", str(path), name, *([f"^{since}"] if since else []), env=env)
            finally:
                self._git("update-ref", "-d", name, env=env)
            return path.read_bytes()

    def import_bundle(self, data: bytes) -> list[str]:
        """Fetch the commits of a bundle into this repository; returns their tip shas. Prerequisite
        commits (a child's parent) must already be here, or git refuses with a clear error."""
        with tempfile.TemporaryDirectory(prefix="hgm-bundle-") as tmp:
            path = Path(tmp) / "b.bundle"
            path.write_bytes(data)
            env = dict(os.environ)
            heads = self._git("bundle", "list-heads", str(path), env=env).split()
            incoming = f"refs/hgm-incoming/{os.getpid()}-{threading.get_ident()}"  # private to this call
            self._git("fetch", "-q", str(path), f"refs/*:{incoming}/*", env=env)
            for ref in self._git("for-each-ref", "--format=%(refname)", incoming, env=env).split():
                self._git("update-ref", "-d", ref, env=env)
            return heads[0::2]

    def has_commit(self, sha: str) -> bool:
        proc = subprocess.run(["git", "--git-dir", str(self.path), "cat-file", "-e", f"{sha}^{{commit}}"],
                              capture_output=True)
        return proc.returncode == 0

    # -- reading ---------------------------------------------------------------------------
    def resolve(self, rev: str) -> str:
        """Full sha of a commit-ish, or UserError naming what was asked."""
        try:
            return str(self.repo.git.rev_parse("--verify", "--quiet", f"{rev}^{{commit}}")).strip()
        except git.GitCommandError:
            raise UserError(f"no commit {rev!r} in the archive {self.path}") from None

    def resolve_agent(self, spec: str) -> str:
        """Full sha of a node id (branch node-<id>) or, failing that, of a commit-ish.
        An all-digit abbreviated sha is a node id only when such a node exists."""
        if spec.isdigit():
            try:
                return self.resolve(f"node-{spec}")
            except UserError:
                try:
                    return self.resolve(spec)
                except UserError:
                    raise UserError(f"no node {spec} (branch node-{spec}) and no commit {spec!r} "
                                    f"in the archive {self.path}; `hgm show-tree` lists the nodes") from None
        return self.resolve(spec)

    def message(self, sha: str) -> str:
        message = self.repo.commit(sha).message
        return message if isinstance(message, str) else message.decode(errors="replace")

    def parent_of(self, sha: str) -> str | None:
        parents = self.repo.commit(sha).parents
        return parents[0].hexsha if parents else None

    def diff(self, parent: str, child: str) -> str:
        """Unified diff of a child against its parent."""
        return str(self.repo.git.diff(parent, child))

    def export(self, sha: str, dest: Path) -> Path:
        """Write the agent's files at commit `sha` into `dest` (created; must be empty or absent)."""
        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise UserError(f"export target {dest} exists and is not empty; give a new directory")
        dest.mkdir(parents=True, exist_ok=True)
        if not self.repo.git.ls_tree(sha):
            return dest  # no files: git's tar of an empty tree has no header tarfile can read
        data = io.BytesIO()
        self.repo.archive(data, sha, format="tar")
        data.seek(0)
        with tarfile.open(fileobj=data) as tar:
            tar.extractall(dest, filter="data")
        return dest

    def checkout(self, sha: str, cache_root: Path) -> Path:
        """A read-only-by-convention copy of the agent at `sha` under cache_root/<sha>, exported once
        and shared (export to a temporary name, then an atomic rename: parallel callers are safe)."""
        final = Path(cache_root) / sha
        if final.is_dir():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=cache_root))
        try:
            self.export(sha, tmp / "agent")
            try:
                os.rename(tmp / "agent", final)
            except OSError:  # another worker renamed its copy first
                if not final.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def export_repo(self, sha: str, dest: Path) -> Path:
        """`dest` as a fresh one-commit git repo holding the files of `sha` (a git copy of the agent,
        so an agent working on its own code can commit/diff freely; the harness diffs it later)."""
        self.export(sha, dest)
        r = git.Repo.init(dest)
        shutil.copyfile(self.path / "info" / "exclude", dest / ".git" / "info" / "exclude")
        # The copy's one commit (which the self-improvement prompt names) depends on the code alone: a fixed
        # date, and the tree rather than the archive's commit (which holds its time), so a replayed rewrite
        # sends the recorded request.
        tree = self.repo.git.rev_parse(f"{sha}^{{tree}}")
        with r.git.custom_environment(**_IDENTITY, GIT_AUTHOR_DATE=_EPOCH, GIT_COMMITTER_DATE=_EPOCH):
            r.git.add("-A", ".")
            r.git.commit("-q", "--allow-empty", "-m", f"agent (tree {tree[:12]})")
        return dest


def init_archive(path: Path, initial_agent: Path, message: str = "initial agent") -> tuple[Archive, str]:
    """Create the archive with `initial_agent` (an agent, or a target's directory; the command line
    checked it) as the root commit (branch node-0 is set by the caller once the store has the root's
    id). Returns (archive, root sha)."""
    if not Path(initial_agent).is_dir():
        raise UserError(f"{initial_agent} is not a directory")
    archive = Archive.create(path)
    sha = archive.commit_dir(initial_agent, message, parent=None, ref="refs/hgm/root")
    return archive, sha
