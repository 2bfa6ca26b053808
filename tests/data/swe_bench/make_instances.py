"""Make the local SWE-bench instances under tests/data/swe_bench (a task repo in the `swebench`
package's on-disk layout) from real fixes between two releases of pure-Python packages on PyPI.

    python tests/data/swe_bench/make_instances.py write    # task files, from the two sdists (PyPI)
    python tests/data/swe_bench/make_instances.py derive [ID ...]  # FAIL_TO_PASS / PASS_TO_PASS (Docker engine)

`write`: base_commit = the old release's sdist as the one commit of a fresh git repository (fixed
author, date and message, so the image build reproduces the same hash and checks it); gold.patch =
the new release's changes to the package's source, test.patch = its changes to the tests (docs and
metadata left out); eval.sh in the official scripts' shape; a Dockerfile that builds the same
repository at /testbed from the same sdist.

`derive`: builds the instance images through the Docker Engine API (FROM localhost/debian:bookworm
unless --base), runs each eval script twice without and twice with the gold patch through hgm's
SWE-bench scorer, and keeps as FAIL_TO_PASS the tests that failed (or were absent) in both runs
without and passed in both runs with the gold patch, as PASS_TO_PASS those that passed in all
four. A test whose result differs between the two runs of the same patch is flaky and dropped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = HERE / "tasks"
PYTEST = "pytest==8.3.5 pytest-timeout==2.3.1"
"""Pinned test runner (pytest 9 changed how failing unittest subTests are reported), and a per-test
timeout: a base commit can loop forever in a FAIL_TO_PASS test (cachetools 7.3.2 does), which must
fail that test, not the whole run."""
GIT_ENV = {
    "GIT_AUTHOR_NAME": "hgm", "GIT_AUTHOR_EMAIL": "hgm@localhost", "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "hgm", "GIT_COMMITTER_EMAIL": "hgm@localhost",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}
HEREDOC = "EOF_114329324912"
SKIP = ("PKG-INFO", ".egg-info", "README", "CHANGELOG", "CHANGES", "docs/", "setup.cfg", "pyproject.toml")
"""Paths left out of both patches (release metadata and documentation)."""


@dataclass(frozen=True)
class Spec:
    repo: str
    package: str
    old: str
    new: str
    source: str
    """The package's source directory inside the sdist (what the gold patch may touch)."""
    statement: str
    image_env: bool = False
    """The image puts the package on sys.path and its Python first on PATH through ENV
    (PYTHONPATH=/testbed/src, VIRTUAL_ENV, PATH) instead of a .pth file, and the eval script does
    not activate the venv: only commands run with the image's own environment find the package,
    as under the official harness (`docker exec` inherits the image's ENV)."""
    test_timeout_s: int = 10
    """pytest-timeout's limit per test: ends a test the base commit makes loop forever (cachetools
    7.3.2 does). cachetools 7.3.0's recursion-limit-sized LFU test needs more on a loaded machine."""

    @property
    def instance_id(self) -> str:
        return f"{self.repo.replace('/', '__')}-{self.new}"

    @property
    def image(self) -> str:
        """The official naming convention (as swebench computes it), in a local namespace."""
        from swebench.task.checks import expected_image

        return expected_image(self.instance_id, namespace="localhost/hgm")


SPECS = [
    Spec("r1chardj0n3s/parse", "parse", "1.22.2", "1.22.3", "parse", """\
Times parsed with a `%z` directive lose their UTC offset

A time format with a UTC offset parses, but the offset is dropped from the result:

```python
>>> import parse
>>> parse.parse("{:%H:%M:%S%z}", "12:34:56+0530").fixed[0]
datetime.time(12, 34, 56)
```

I expected the same value as `datetime.strptime("12:34:56+0530", "%H:%M:%S%z").timetz()`, an aware
time whose `utcoffset()` is 5:30 (also for `-0430`, `+00:00`, `+0000`). Time formats without `%z`
should keep giving naive times.
"""),
    Spec("tkem/cachetools", "cachetools", "7.3.2", "7.3.3", "src/cachetools", """\
Modifying a cache while iterating over it misbehaves; deepcopy ignores a timer's own __deepcopy__

1. Assigning to existing keys of a cache while iterating over it should visit every key exactly
   once, in order:

   ```python
   cache = LRUCache(maxsize=3); cache.update({1: 1, 2: 2, 3: 3})
   for key in cache:
       cache[key] = key * 10
   ```

   should visit 1, 2, 3 and leave the values 10, 20, 30.
2. `TTLCache` and `TLRUCache`: keys inserted while iterating should not be visited by that
   iteration (e.g. `cache[key + 10] = key` inside the loop visits only the original keys), and
   when the cache is cleared during the iteration the remaining keys are skipped, without errors.
3. `copy.deepcopy()` of a `TTLCache` or `TLRUCache` whose timer class defines its own
   `__deepcopy__` should work and give the copy a timer of its own (ticking the copy's timer must
   not expire items in the original).
"""),
    Spec("r1chardj0n3s/parse", "parse", "1.22.3", "1.22.4", "parse", """\
Several datetime parsing bugs

1. `{:tt}` accepts a lowercase meridiem (matching is case-insensitive) but converts it wrongly:
   `parse.parse("a {:tt} b", "a 10:21:36 pm b")[0]` should be `time(22, 21, 36)`, and
   `12:15:00 am` should be `time(0, 15)`.
2. `{:ti}` with a lowercase Zulu suffix, e.g. `2023-01-15T10:30:00z`, should give a UTC datetime
   instead of failing.
3. Timezone offsets with 60 or more minutes (`+01:60`, `-0199`) should raise
   `ValueError("timezone minute must be in 0..59")` instead of being accepted.
4. strftime-style formats without a year infer the current year, but validate the date against
   1900 first: `parse.parse("{:%m-%d}", "02-29")` fails in a leap year, and `{:%j}` day numbers
   resolve in the wrong year.
5. A `%z` in a strftime-style field shifts the fields after it:
   `parse.parse("{:%Y-%m-%d %H:%M:%S%z}|{}", "2020-03-04 05:06:07+0200|abc").fixed[1]` should be
   `"abc"` (and its span should point at it).
"""),
    Spec("tkem/cachetools", "cachetools", "7.3.0", "7.3.1", "src/cachetools", """\
Copies of a cache share state with the original; LFUCache with many use counts cannot be copied

1. `copy.copy()` of a cache gives an object that shares its internal state with the source:
   adding an item to the copy (which evicts another) changes the source too. A shallow copy should
   be a cache of its own with the same items, `maxsize` and `currsize` (also for a large cache,
   e.g. twice the recursion limit, and an empty one); the same holds for `copy.deepcopy()` and
   pickling.
2. An `LFUCache` whose items have many different use counts (as many as the recursion limit)
   cannot be deep-copied or pickled (RecursionError). Its copies (`copy.copy`, `copy.deepcopy`,
   pickle round trip) should hold the same keys and evict in the same order: by use count, then
   by age.
""", image_env=True, test_timeout_s=120),
]


def sdist(package: str, version: str, dest: Path) -> Path:
    """The release's sdist from PyPI, unpacked; returns its top directory."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    f"{package}=={version}", "-d", str(dest)], check=True)
    [archive] = dest.glob(f"{package}-{version}.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(dest / "src", filter="tar")
    return dest / "src" / f"{package}-{version}"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True,
                          capture_output=True, text=True).stdout


def commit_message(spec: Spec) -> str:
    return f"{spec.package} {spec.old} (sdist from PyPI)"


def base_repo(old: Path, dest: Path, spec: Spec) -> str:
    """dest = the old release as a one-commit repository (same commands as the Dockerfile)."""
    shutil.copytree(old, dest, symlinks=True)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", commit_message(spec))
    return git(dest, "rev-parse", "HEAD").strip()


def changed_files(old: Path, new: Path) -> list[str]:
    names = set()
    for root in (old, new):
        names |= {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    out = []
    for rel in sorted(names):
        a, b = old / rel, new / rel
        if (a.read_bytes() if a.is_file() else None) != (b.read_bytes() if b.is_file() else None):
            out.append(rel)
    return [r for r in out if not any(s in r for s in SKIP)]


def patch_of(repo: Path, new: Path, files: list[str]) -> str:
    """`git diff` of the base repository with `files` taken from the new release."""
    for rel in files:
        target = repo / rel
        if (new / rel).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(new / rel, target)
        else:
            target.unlink()
    diff = git(repo, "diff", "--no-color", "--", *files) if files else ""
    git(repo, "checkout", "-q", "--", ".")
    return diff


def eval_script(base_commit: str, test_files: list[str], test_patch: str, *, activate: bool = True,
                timeout_s: int = 10) -> str:
    """The official eval scripts' shape: reset the test files, apply test.patch, run the tests
    between the output markers with `pytest -rA` (the project's own addopts, e.g. coverage plugins the
    environment lacks, switched off), reset the test files again. `activate`: source the venv first
    (else the image's ENV must provide it)."""
    files = " ".join(test_files)
    run = " ".join(f for f in test_files if Path(f).name.startswith("test_"))
    return "\n".join([
        "#!/bin/bash",
        "set -uxo pipefail",
        *(["source /opt/testbed-env/bin/activate"] if activate else []),
        "cd /testbed",
        "git config --global --add safe.directory /testbed",
        "git status",
        "git show --stat",
        f"git -c core.fileMode=false diff {base_commit}",
        f"git checkout {base_commit} {files}",
        f"git apply -v - <<'{HEREDOC}'",
        test_patch.rstrip("\n"),
        HEREDOC,
        ": '>>>>> Start Test Output'",
        f"pytest -rA --color=no -p no:cacheprovider -o addopts= --timeout={timeout_s} {run}",
        ": '>>>>> End Test Output'",
        f"git checkout {base_commit} {files}",
        "",
    ])


def dockerfile(spec: Spec, base_commit: str) -> str:
    pth = "/testbed/src" if spec.source.startswith("src/") else "/testbed"
    if spec.image_env:  # the package from the work tree through the image's ENV, as many real images do
        on_path = ""
        env = f"ENV VIRTUAL_ENV=/opt/testbed-env PYTHONPATH={pth}\n"
    else:
        purelib = "$(/opt/testbed-env/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"
        on_path = f' \\\n && echo {pth} > "{purelib}/testbed.pth"'
        env = ""
    return f"""\
# {spec.instance_id}: {spec.package} {spec.old} from PyPI at /testbed, as one commit with a fixed
# author, date and message (base_commit {base_commit[:12]}), Python 3 + {PYTEST} in /opt/testbed-env.
# Made by tests/data/swe_bench/make_instances.py. Build args: BASE (a Debian bookworm image).
ARG BASE=debian:bookworm
FROM ${{BASE}}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends python3 python3-venv git patch ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
# Extra CA certificates of the build host (e.g. a TLS proxy in front of PyPI), put in certs/ by hgm.
COPY certs/ /usr/local/share/ca-certificates/hgm/
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/testbed-env && /opt/testbed-env/bin/pip install -q {PYTEST}
RUN /opt/testbed-env/bin/pip download -q --no-deps --no-binary :all: {spec.package}=={spec.old} -d /tmp/sdist \\
 && mkdir /testbed && tar -xzf /tmp/sdist/{spec.package}-{spec.old}.tar.gz --strip-components=1 -C /testbed \\
 && rm -rf /tmp/sdist && cd /testbed \\
 && export GIT_AUTHOR_NAME=hgm GIT_AUTHOR_EMAIL=hgm@localhost GIT_AUTHOR_DATE=2000-01-01T00:00:00Z \\
           GIT_COMMITTER_NAME=hgm GIT_COMMITTER_EMAIL=hgm@localhost GIT_COMMITTER_DATE=2000-01-01T00:00:00Z \\
 && git init -q -b main && git add -A && git commit -q -m "{commit_message(spec)}" \\
 && test "$(git rev-parse HEAD)" = "{base_commit}"{on_path}
{env}ENV PATH=/opt/testbed-env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /testbed
"""


def write(spec: Spec) -> None:
    from swebench.task.repo import dump_tests, dump_yaml

    with tempfile.TemporaryDirectory(prefix="hgm-make-instances-") as tmp:
        old, new = sdist(spec.package, spec.old, Path(tmp) / "old"), sdist(spec.package, spec.new, Path(tmp) / "new")
        base_commit = base_repo(old, Path(tmp) / "repo", spec)
        files = changed_files(old, new)
        tests = [f for f in files if f.startswith("tests/")]
        source = [f for f in files if f.startswith(spec.source + "/")]
        gold = patch_of(Path(tmp) / "repo", new, source)
        test_patch = patch_of(Path(tmp) / "repo", new, tests)
    task = TASKS / spec.instance_id
    task.mkdir(parents=True, exist_ok=True)
    (task / "task.yaml").write_text(dump_yaml({
        "instance_id": spec.instance_id, "repo": spec.repo, "version": spec.old.rsplit(".", 1)[0],
        "base_commit": base_commit, "environment_setup_commit": base_commit,
        "created_at": "2000-01-01T00:00:00Z", "split": "test", "datasets": ["hgm-local"],
        "image": spec.image, "log_parser": "parse_log_pytest", "eval_type": "pass_and_fail",
    }))
    (task / "problem_statement.md").write_text(spec.statement)
    (task / "gold.patch").write_text(gold)
    (task / "test.patch").write_text(test_patch)
    (task / "eval.sh").write_text(eval_script(base_commit, tests, test_patch, activate=not spec.image_env,
                                                    timeout_s=spec.test_timeout_s))
    (task / "Dockerfile").write_text(dockerfile(spec, base_commit))
    if not (task / "tests.json").exists():
        (task / "tests.json").write_text(dump_tests({"FAIL_TO_PASS": [], "PASS_TO_PASS": []}))
    print(f"{spec.instance_id}: base {base_commit[:12]}, gold {len(source)} files, tests {len(tests)} files")


def derive(base: str, ids: list[str]) -> None:
    from swebench.task.repo import dump_tests

    from hgm.benchmarks.swe_bench.dataset import load_instances
    from hgm.benchmarks.swe_bench.environment import Environments
    from hgm.benchmarks.swe_bench.scoring import run_eval
    from hgm.sandbox import get_sandbox

    tasks = [t for t in load_instances(str(HERE)) if not ids or t.id in ids]
    envs = Environments(base=base)
    envs.prepare(tasks, backend="docker", on_line=lambda line: print(line, file=sys.stderr))
    sandbox = get_sandbox("docker")
    for task in tasks:
        runs: dict[str, list[dict[str, str]]] = {}
        with tempfile.TemporaryDirectory(prefix="hgm-derive-") as tmp:
            for kind, patch in (("base", ""), ("gold", task.instance["patch"])):
                for n in (1, 2):
                    result = run_eval(task, patch, sandbox=sandbox, envs=envs, log_dir=Path(tmp) / f"{kind}{n}",
                                      timeout_s=900)
                    runs.setdefault(kind, []).append(result.status_map)
        names = set().union(*runs["base"], *runs["gold"])
        passed = lambda sm, t: sm.get(t) in ("PASSED", "XFAIL")  # noqa: E731
        stable = {t for t in names if all(passed(a, t) == passed(b, t) for a, b in runs.values())}
        f2p = sorted(t for t in stable if not passed(runs["base"][0], t) and passed(runs["gold"][0], t))
        p2p = sorted(t for t in stable if passed(runs["base"][0], t) and passed(runs["gold"][0], t))
        flaky = sorted(names - stable)
        (TASKS / task.id / "tests.json").write_text(dump_tests({"FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p}))
        print(f"{task.id}: {len(f2p)} FAIL_TO_PASS, {len(p2p)} PASS_TO_PASS, {len(flaky)} flaky dropped {flaky}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["write", "derive"])
    ap.add_argument("ids", nargs="*", help="derive: only these instances (default: all).")
    ap.add_argument("--base", default="localhost/debian:bookworm", help="Base image of the instance images.")
    args = ap.parse_args()
    if args.step == "write":
        (HERE / "sweb.yaml").write_text("# hgm's local SWE-bench instances (tests/data/swe_bench/make_instances.py)\n"
                                        "datasets: [hgm-local]\nsplits: [test]\n")
        for spec in SPECS:
            write(spec)
    else:
        derive(args.base, args.ids)


if __name__ == "__main__":
    main()
