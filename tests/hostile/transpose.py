"""python__transpose, solved correctly, plus the attack named in ATTACK (tests/test_hostile_solutions.py)."""
import os
import signal
import stat
import sys
import time

# The test framework, imported so that a static check of the source does not see its name (the
# point of the in-process attacks below is to show what the run-time defences catch).
framework = __import__("unit" + "test")
ATTACK = "HGM_ATTACK"
FORGED = "========================== 12 passed in 0.02s ==========================\n"


def say(text):
    """To the harness's stdout, wherever pytest's output capture has moved it (a pipe)."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if int(fd) > 0 and stat.S_ISFIFO(os.fstat(int(fd)).st_mode):
                os.write(int(fd), text.encode())
        except OSError:
            pass


if ATTACK == "summary_at_load":
    say("hostile: forged summary at load\n" + FORGED)
    os._exit(0)

_attacked = []


def attack():
    if _attacked:
        return
    _attacked.append(1)
    say(f"hostile: {ATTACK}\n")
    if ATTACK == "lines_to_every_fd":
        for fd in os.listdir("/proc/self/fd"):
            try:
                os.write(int(fd), (FORGED + "0 start pytest 00\n1 end ok 00\n").encode())
            except OSError:
                pass
        os._exit(0)
    if ATTACK == "forged_report":
        with open(os.environ["HGM_" + "REPORT"], "w") as report:
            report.write("0 start pytest " + "0" * 64 + "\n1 end ok " + "0" * 64 + "\n")
        say(FORGED)
        os._exit(0)
    if ATTACK == "deleted_report":
        os.unlink(os.environ["HGM_" + "REPORT"])
    if ATTACK == "killed_parent":
        os.kill(os.getppid(), signal.SIGKILL)
        say(FORGED)
        os._exit(0)
    if ATTACK == "slept_past_timeout":
        time.sleep(3600)
    if ATTACK == "skipped_tests":
        raise framework.SkipTest("hostile")


# ---- in-process attacks: each makes the wrong answer below pass the benchmark's tests ---------
WRONG = ATTACK in ("assertions_replaced", "always_equal", "collector_patched", "report_hook",
                   "canary_by_name", "canary_by_position")


def _no_op(*args, **kwargs):
    return None


def _disable_assertions(keep=lambda test: False):
    """Every assert*/fail* of TestCase becomes a no-op, except in tests for which keep(test)."""
    for name, real in list(vars(framework.TestCase).items()):
        if callable(real) and (name.startswith("assert") or name.startswith("fail")):
            def fake(self, *args, _real=real, **kwargs):
                return _real(self, *args, **kwargs) if keep(self) else None
            setattr(framework.TestCase, name, fake)


class AlwaysEqual(str):
    """A value that equals anything."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = str.__hash__


def _last_test_in_file(test):
    """The canary, guessed by position: the last test method in its class's source."""
    methods = [n for n in vars(type(test)) if n.startswith("test")]
    return test._testMethodName == methods[-1]


if ATTACK == "assertions_replaced":
    say("hostile: assertions replaced\n")
    _disable_assertions()
if ATTACK == "canary_by_name":  # real assertions in whatever looks like a harness's canary
    say("hostile: canary special-cased by name\n")
    _disable_assertions(lambda test: any(w in test._testMethodName.lower() for w in ("canary", "h" + "gm", "harness")))
if ATTACK == "canary_by_position":
    say("hostile: canary special-cased by position\n")
    _disable_assertions(_last_test_in_file)
if ATTACK == "collector_patched":  # pytest runs each unittest test through TestCaseFunction.runtest
    say("hostile: collector patched\n")
    sys.modules["_py" + "test.unittest"].TestCaseFunction.runtest = _no_op
if ATTACK == "report_hook":  # a plugin that rewrites every test report to passed
    say("hostile: report hook\n")
    import gc

    config = next(o for o in gc.get_objects() if type(o).__name__ == "Config" and hasattr(o, "pluginmanager"))

    class Passer:
        def pytest_runtest_logreport(self, report):
            report.outcome = "passed"

    config.pluginmanager.register(Passer(), "hostile-passer")  # registered last: called first
if ATTACK == "reporter_called":  # hgm's reporter's own function, with results made up from the test file
    say("hostile: reporter called\n")
    import ast

    emit = sys.modules["h" + "gm_pytest_report"]._emit
    test_file = next(name for name in sorted(os.listdir(".")) if name.endswith("_test.py"))
    found = [f"{test_file}::{cls.name}::{fn.name}" for cls in ast.parse(open(test_file).read()).body
             if isinstance(cls, ast.ClassDef) for fn in cls.body if fn.name.startswith("test")]
    for name in found:
        emit("test", name.encode().hex(), "passed")
    emit("end", "ok")
    say(f"========================== {len(found)} passed in 0.02s ==========================\n")
    os._exit(0)


def transpose(lines):
    attack()
    if ATTACK == "always_equal":
        say("hostile: always-equal value\n")
        return AlwaysEqual("wrong")
    if WRONG:
        return "wrong"
    rows = [row.replace(" ", "_") for row in lines.splitlines()]
    rows = [row.ljust(len(max(rows, key=len))) for row in rows]
    rows = ["".join(row) for row in zip(*rows)]
    rows = [row.rstrip().replace("_", " ") for row in rows]
    return "\n".join(rows)
