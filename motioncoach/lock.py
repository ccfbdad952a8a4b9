"""One run per data dir: an advisory lock that also names who holds it.

The lock is an flock on <data-dir>/.motioncoach.lock, so the kernel releases it when its holder
dies, even by kill -9: a crashed run never leaves a stale lock behind. It is re-entrant within a
process, because a pipeline run holds it while its sub-flows take it again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from motioncoach.errors import MotionCoachError

LOCK_FILE = ".motioncoach.lock"
# How long a run waits for a data dir another run holds before it gives up; 0 fails at once. The
# deployments set it (a nightly relabel waits for a pipeline run), the CLI with --wait-for-lock.
WAIT_VARIABLE = "MOTIONCOACH_LOCK_WAIT_S"
log = logging.getLogger(__name__)

_held: dict[Path, tuple[int, int]] = {}  # path -> (fd, depth)
_guard = threading.Lock()


class DataDirBusy(MotionCoachError):
    """Another run holds the data dir."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another run"
    what = info.get("what") or "a run"
    return f"{what} (pid {info.get('pid')} on {info.get('host')}, since {info.get('since')})"


@contextmanager
def data_dir_lock(data_dir: Path, what: str, wait_s: float | None = None) -> Iterator[None]:
    """Hold the data dir for the duration; wait up to wait_s (default: $MOTIONCOACH_LOCK_WAIT_S, else 0)
    for it, then raise DataDirBusy."""
    if wait_s is None:
        wait_s = lock_wait_s()
    path = (Path(data_dir) / LOCK_FILE).resolve()
    with _guard:
        if path in _held:
            fd, depth = _held[path]
            _held[path] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if not reentered:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        waiting_logged = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    waited = f" (waited {wait_s:.0f} s)" if wait_s else ""
                    raise DataDirBusy(
                        f"{data_dir} is in use by {_holder(path)}{waited}. Wait for it to finish (--wait-for-lock, "
                        f"or {WAIT_VARIABLE} in seconds), or use another --data-dir. Nothing was changed."
                    ) from None
                if not waiting_logged:
                    log.warning("%s is in use by %s; waiting up to %.0f s", data_dir, _holder(path), wait_s)
                    waiting_logged = True
                time.sleep(0.5)
        info = {"what": what, "pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        with _guard:
            _held[path] = (fd, 1)
    try:
        yield
    finally:
        with _guard:
            fd, depth = _held[path]
            if depth > 1:
                _held[path] = (fd, depth - 1)
            else:
                del _held[path]
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def lock_wait_s() -> float:
    """Seconds to wait for a busy data dir, from $MOTIONCOACH_LOCK_WAIT_S; a bad value is an error naming it."""
    text = os.environ.get(WAIT_VARIABLE, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise MotionCoachError(f"{WAIT_VARIABLE}={text!r} is not a number of seconds (0 or more).")
    return value
