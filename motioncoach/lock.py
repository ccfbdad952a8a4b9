"""One run per data dir: an advisory lock that also names who holds it.

The lock is an flock on <data-dir>/.motioncoach.lock, so the kernel releases it when its holder
dies, even by kill -9: a crashed run never leaves a stale lock behind. It is re-entrant within a
process, because a pipeline run holds it while its sub-flows take it again.
"""

from __future__ import annotations

import fcntl
import json
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
def data_dir_lock(data_dir: Path, what: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the data dir for the duration; wait up to wait_s for it, then raise DataDirBusy."""
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
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise DataDirBusy(
                        f"{data_dir} is in use by {_holder(path)}. Wait for it to finish, or use another "
                        "--data-dir. Nothing was changed."
                    ) from None
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
