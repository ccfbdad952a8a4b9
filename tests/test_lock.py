"""Two runs on one data dir: the second is refused with a clear message, and nothing is lost."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from motioncoach.errors import MotionCoachError
from motioncoach.lock import DataDirBusy, data_dir_lock

HOLD = """
import sys, time
from motioncoach.lock import data_dir_lock
with data_dir_lock(sys.argv[1], "build-dataset run 'brave-fox'"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_run_is_refused_while_the_first_holds_the_data_dir(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirBusy, match=r"in use by build-dataset run 'brave-fox' \(pid \d+"):
            with data_dir_lock(tmp_path, "motioncoach run"):
                pass
        with pytest.raises(DataDirBusy, match=r"in use by build-dataset run 'brave-fox' .*\(waited 1 s\)"):
            with data_dir_lock(tmp_path, "motioncoach run", wait_s=1.0):  # waited, then refused saying so
                pass
    finally:
        holder.kill()  # like kill -9: the kernel drops the lock with the process
        holder.wait()
    with data_dir_lock(tmp_path, "motioncoach run"):
        with data_dir_lock(tmp_path, "nested sub-flow"):  # re-entrant in one process
            pass


def _wait_until_logged_waiting(caplog, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any("waiting up to" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the second run never said it was waiting"
        time.sleep(0.05)


def test_a_second_run_asked_to_wait_queues_behind_the_first(tmp_path, monkeypatch, caplog):
    """The waiting run gets the data dir when, and only when, the first run lets it go."""
    import threading

    until_told = HOLD.replace("time.sleep(60)", "sys.stdin.readline()")
    holder = subprocess.Popen(
        [sys.executable, "-c", until_told, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    acquired = threading.Event()
    caplog.set_level("WARNING", logger="motioncoach.lock")

    def second_run() -> None:
        with data_dir_lock(tmp_path, "relabel run 'calm-owl'"):
            acquired.set()

    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("MOTIONCOACH_LOCK_WAIT_S", "120")  # what the deployments and --wait-for-lock set
        waiting = threading.Thread(target=second_run)
        waiting.start()
        _wait_until_logged_waiting(caplog)  # the second run is queued, and says so
        assert not acquired.is_set()  # still queued while the first run holds the data dir
        holder.stdin.write("done\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
        assert acquired.wait(timeout=30)  # then it ran
        waiting.join(timeout=30)
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.setenv("MOTIONCOACH_LOCK_WAIT_S", "soon")
    with pytest.raises(MotionCoachError, match="MOTIONCOACH_LOCK_WAIT_S='soon' is not a number of seconds"):
        with data_dir_lock(tmp_path, "motioncoach run"):
            pass
