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
        started = time.monotonic()
        with pytest.raises(DataDirBusy):
            with data_dir_lock(tmp_path, "motioncoach run", wait_s=1.0):
                pass
        assert time.monotonic() - started >= 1.0
    finally:
        holder.kill()  # like kill -9: the kernel drops the lock with the process
        holder.wait()
    with data_dir_lock(tmp_path, "motioncoach run"):
        with data_dir_lock(tmp_path, "nested sub-flow"):  # re-entrant in one process
            pass


def test_a_second_run_asked_to_wait_queues_behind_the_first(tmp_path, monkeypatch):
    short = HOLD.replace("time.sleep(60)", "time.sleep(2)")
    holder = subprocess.Popen([sys.executable, "-c", short, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("MOTIONCOACH_LOCK_WAIT_S", "30")  # what the deployments and --wait-for-lock set
        started = time.monotonic()
        with data_dir_lock(tmp_path, "relabel run 'calm-owl'"):
            waited = time.monotonic() - started
        assert 0.5 < waited < 30  # it waited for the first run to finish, then ran
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.setenv("MOTIONCOACH_LOCK_WAIT_S", "soon")
    with pytest.raises(MotionCoachError, match="MOTIONCOACH_LOCK_WAIT_S='soon' is not a number of seconds"):
        with data_dir_lock(tmp_path, "motioncoach run"):
            pass
