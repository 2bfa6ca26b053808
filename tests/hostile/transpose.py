"""python__transpose, solved correctly, plus the attack named in ATTACK (tests/test_hostile_solutions.py)."""
import os
import signal
import stat
import time
import unittest

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
        with open(os.environ["HGM_REPORT"], "w") as report:
            report.write("0 start pytest " + "0" * 64 + "\n1 end ok " + "0" * 64 + "\n")
        say(FORGED)
        os._exit(0)
    if ATTACK == "deleted_report":
        os.unlink(os.environ["HGM_REPORT"])
    if ATTACK == "killed_parent":
        os.kill(os.getppid(), signal.SIGKILL)
        say(FORGED)
        os._exit(0)
    if ATTACK == "slept_past_timeout":
        time.sleep(3600)
    if ATTACK == "skipped_tests":
        raise unittest.SkipTest("hostile")


def transpose(lines):
    attack()
    rows = [row.replace(" ", "_") for row in lines.splitlines()]
    rows = [row.ljust(len(max(rows, key=len))) for row in rows]
    rows = ["".join(row) for row in zip(*rows)]
    rows = [row.rstrip().replace("_", " ") for row in rows]
    return "\n".join(rows)
