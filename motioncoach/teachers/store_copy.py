"""The label store run from local disk and copied back to where it lives as answers arrive, and at the end.

SQLite's write-ahead log needs file locks and shared memory that network file systems (a Modal
volume) do not offer reliably. Labeling therefore works on a copy on local disk; a background
thread copies a consistent snapshot back as soon as a write is committed (and every `every_s` in
any case), calling `on_sync` (which commits the volume) each time, so a preempted container loses at
most the answers in flight. LabelStore.make_durable (before a batch job is created, and once it is)
copies back in the caller's thread and returns only when the copy is in place.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from motioncoach.teachers.store import STORE_FILE, listen_to_writes

log = logging.getLogger(__name__)


@contextmanager
def store_on_local_disk(
    data_dir: Path, scratch_dir: Path, on_sync: Callable[[], None] = lambda: None, every_s: float = 30.0
) -> Iterator[Path]:
    """Yield a directory holding a working copy of data_dir's label store; copy it back as it grows."""
    home, scratch = Path(data_dir) / STORE_FILE, Path(scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    if home.exists():
        shutil.copyfile(home, scratch / STORE_FILE)
    stop, written = threading.Event(), threading.Event()
    lock = threading.Lock()

    def sync() -> None:
        with lock:
            if (scratch / STORE_FILE).exists():
                _copy_back(scratch / STORE_FILE, home)
                on_sync()

    def on_write(wait: bool) -> None:
        if wait:
            written.clear()  # this copy takes every write so far
            sync()
        else:
            written.set()

    def loop() -> None:
        while not stop.is_set():
            written.wait(every_s)
            written.clear()  # writes landing during the copy set it again: they are copied right after
            if stop.is_set():
                return
            try:
                sync()
            except Exception:  # a failed interim copy is retried next time; the final one raises
                log.exception("copying the label store back to %s failed", home)

    listen_to_writes(scratch / STORE_FILE, on_write)
    thread = threading.Thread(target=loop, name="label-store-sync", daemon=True)
    thread.start()
    try:
        yield scratch
    finally:
        listen_to_writes(scratch / STORE_FILE, None)
        stop.set()
        written.set()
        thread.join()
        sync()


def _copy_back(working: Path, home: Path) -> None:
    """Snapshot the working store with SQLite's backup API and put it in place atomically."""
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / STORE_FILE
        source, target = sqlite3.connect(working), sqlite3.connect(snapshot)
        try:
            source.backup(target)  # consistent even while the labeling connection writes
        finally:
            source.close()
            target.close()
        partial = home.with_name(f".{home.name}.partial")
        shutil.copyfile(snapshot, partial)
        os.replace(partial, home)
