"""The agent archive: root + child commits, node refs, parallel-safe export."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hgm.archive import Archive, init_archive, node_ref
from hgm.errors import UserError


def _agent(tmp: Path) -> Path:
    d = tmp / "agent"
    (d / "tools").mkdir(parents=True)
    (d / "coding_agent.py").write_text("print('v0')\n")
    (d / "tools" / "edit.py").write_text("X = 1\n")
    (d / "__pycache__").mkdir()
    (d / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    return d


def test_root_child_export_and_refs(tmp_path: Path) -> None:
    archive, root = init_archive(tmp_path / "archive", _agent(tmp_path))
    archive.set_node(0, root)
    work = archive.export_repo(root, tmp_path / "work")
    assert (work / "coding_agent.py").read_text() == "print('v0')\n"
    assert not (work / "__pycache__").exists(), "caches are not archived"
    (work / "coding_agent.py").write_text("print('v1')\n")
    (work / "tools" / "new.py").write_text("Y = 2\n")
    child = archive.commit_dir(
        work, "child: add new tool\n\nwhy: tests failed", parent=root, ref="refs/hgm/expansions/1"
    )
    archive.set_node(1, child)

    reopened = Archive.open(tmp_path / "archive")
    assert reopened.parent_of(child) == root
    assert reopened.parent_of(root) is None
    assert reopened.resolve("node-1") == child
    assert reopened.resolve(node_ref(0)) == root
    assert reopened.message(child).startswith("child: add new tool")
    diff = reopened.diff(root, child)
    assert "+print('v1')" in diff and "tools/new.py" in diff and ".git" not in diff

    def export(i: int) -> str:
        out = reopened.export(child if i % 2 else root, tmp_path / f"out{i}")
        return (out / "coding_agent.py").read_text()

    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(export, range(8)))
    assert texts == ["print('v0')\n", "print('v1')\n"] * 4


def test_parallel_commits_do_not_interfere(tmp_path: Path) -> None:
    archive, root = init_archive(tmp_path / "archive", _agent(tmp_path))

    def child(i: int) -> str:
        work = archive.export_repo(root, tmp_path / f"w{i}")
        (work / f"f{i}.py").write_text(f"I = {i}\n")
        return archive.commit_dir(work, f"child {i}", parent=root, ref=f"refs/hgm/expansions/{i}")

    with ThreadPoolExecutor(4) as pool:
        shas = list(pool.map(child, range(6)))
    assert len(set(shas)) == 6
    for i, sha in enumerate(shas):
        files = set(archive.repo.git.ls_tree("-r", "--name-only", sha).split())
        assert files == {"coding_agent.py", "tools/edit.py", f"f{i}.py"}


def test_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a directory"):
        init_archive(tmp_path / "a", tmp_path / "missing")
    with pytest.raises(UserError, match="not an hgm agent archive"):
        Archive.open(tmp_path / "nothing")
    archive, root = init_archive(tmp_path / "archive", _agent(tmp_path))
    with pytest.raises(UserError, match="no commit"):
        archive.resolve("node-99")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        archive.export(root, tmp_path / "full")


def test_checkout_is_shared_and_parallel_safe(tmp_path: Path) -> None:
    archive, root = init_archive(tmp_path / "archive", _agent(tmp_path))
    cache = tmp_path / "cache"
    cache.mkdir()
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: archive.checkout(root, cache), range(8)))
    assert set(paths) == {cache / root}
    assert (cache / root / "coding_agent.py").read_text() == "print('v0')\n"
    assert [p.name for p in cache.iterdir()] == [root]  # no temporary copies left behind


def test_one_repo_object_per_thread_and_reads_in_parallel(tmp_path: Path) -> None:
    archive, root = init_archive(tmp_path / "archive", _agent(tmp_path))
    mine = archive.repo
    with ThreadPoolExecutor(4) as pool:
        theirs = list(pool.map(lambda _: id(archive.repo), range(4)))
        messages = list(pool.map(lambda _: (archive.message(root), archive.parent_of(root)), range(64)))
    assert archive.repo is mine and id(mine) not in theirs, "GitPython objects are not shared between threads"
    assert messages == [("initial agent\n", None)] * 64


def test_a_child_travels_as_a_bundle_between_archives(tmp_path: Path) -> None:
    head, root = init_archive(tmp_path / "head", _agent(tmp_path))
    node = Archive.create(tmp_path / "node")  # a worker node's cache: it gets the parent by bundle
    assert not node.has_commit(root)
    assert node.import_bundle(head.bundle(root)) == [root] and node.has_commit(root)
    work = node.export_repo(root, tmp_path / "work")
    (work / "coding_agent.py").write_text("print('v1')\n")
    child = node.commit_dir(work, "child", parent=root)
    thin = node.bundle(child, since=root)  # only what is new
    assert len(thin) < len(head.bundle(root)) + 200
    assert head.import_bundle(thin) == [child]
    assert head.parent_of(child) == root and "+print('v1')" in head.diff(root, child)
    assert not head.repo.git.for_each_ref("refs/hgm-incoming"), "no stray refs left"
    with pytest.raises(RuntimeError, match="bundle"):
        Archive.create(tmp_path / "empty").import_bundle(thin)  # the parent is missing there
