"""What a function body needs inside its container: the volume's mount, commits and reloads, the claims, this
input's call id, and the watcher that commits checkpoints while the trainer runs.

Which volume and claims Dict a body reaches is chosen from outside the app: Modal's own in a container,
what `install()` puts in place otherwise (the rehearsal installs its stand-ins; tests running bodies with
`.local()` get a plain directory and a Dict of their own).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from motioncoach.errors import ConfigurationError
from remote.contract import CALL_RECORD, CLAIMS_DICT, HEARTBEAT_SECONDS, SETTINGS, TRAINER_LOG, VOLUME_PATH

log = logging.getLogger(__name__)

VOLUME_ROOT_VARIABLE = "MOTIONCOACH_VOLUME_ROOT"  # where a body finds the mount when it runs outside Modal
CHECKPOINT_POLL_SECONDS = float(os.environ.get("MOTIONCOACH_CHECKPOINT_POLL_S", "30"))


@dataclass
class Installed:
    """The stand-ins a body uses outside Modal: a volume with commit() and reload(), a claims Dict, a call id."""

    volume: Any = None
    claims: Any = None
    call_id: str | None = None


_installed: Installed | None = None


def install(volume: Any = None, claims: Any = None, call_id: str | None = None) -> None:
    """Put stand-ins in place of Modal's volume, claims Dict and call id for the bodies this process runs."""
    global _installed
    _installed = Installed(volume, claims, call_id)


def _in_container() -> bool:
    import modal

    return not modal.is_local()


def _modal_volume():
    import modal

    return modal.Volume.from_name(SETTINGS.volume_name)


def mounted_volume():
    """The volume as this body sees it mounted; None for a plain directory (nothing to commit)."""
    if _installed is not None:
        return _installed.volume
    return _modal_volume() if _in_container() else None


def claims():
    """The workspace's claims Dict (put with skip_if_exists is atomic), or the installed stand-in."""
    global _installed
    if _installed is not None and _installed.claims is not None:
        return _installed.claims
    if _in_container():
        import modal

        return modal.Dict.from_name(CLAIMS_DICT, create_if_missing=True)
    _installed = _installed or Installed()
    _installed.claims = _LocalDict({})  # bodies run locally: a Dict of their own, for this process
    return _installed.claims


class _LocalDict:
    """modal.Dict's put/get/pop over a plain dict, for bodies run with .local()."""

    def __init__(self, data: dict):
        self.data = data

    def put(self, key, value, *, skip_if_exists: bool = False) -> bool:
        if skip_if_exists and key in self.data:
            return False
        self.data[key] = value
        return True

    def get(self, key, default=None):
        return self.data.get(key, default)

    def pop(self, key, default=None):
        return self.data.pop(key, default)


def call_id() -> str:
    """This input's function call id."""
    if _installed is not None and _installed.call_id:
        return _installed.call_id
    import modal

    return modal.current_function_call_id() or "local"


def commit() -> None:
    """Persist this container's writes to the volume, where other containers and the client see them."""
    volume = mounted_volume()
    if volume is not None:
        volume.commit()


def commit_soon(what: str, tries: int = 3, pause_s: float = 5.0) -> bool:
    """commit(), tried a few times; a commit that keeps failing is logged, not raised: the watcher's next
    commit or the one Modal makes when the container exits publishes the writes. Whether it went through."""
    for attempt in range(1, tries + 1):
        try:
            commit()
            return True
        except Exception as exc:  # noqa: BLE001 - raising would make Modal retry hours of GPU work
            log.warning("committing %s failed (%s), try %d of %d", what, exc, attempt, tries)
            if attempt < tries:
                time.sleep(pause_s)
    return False


def reload() -> None:
    """See what other containers committed since this one started."""
    volume = mounted_volume()
    if volume is not None:
        volume.reload()


# ---- Paths on the volume ----


def data_root() -> Path:
    """The volume's mount point (VOLUME_ROOT_VARIABLE points it elsewhere outside Modal)."""
    return Path(os.environ.get(VOLUME_ROOT_VARIABLE, VOLUME_PATH))


def data_dir_for(name: str) -> Path:
    """The data dir on the volume: /data/<name of the local data dir>."""
    return inside(data_root(), name)


def inside(root: Path, relative: str) -> Path:
    """root/relative, refusing anything that would leave root."""
    path = (root / relative).resolve()
    if path != root.resolve() and root.resolve() not in path.parents:
        raise ConfigurationError(f"{relative!r} is not a path inside {root}")
    return path


def on_volume(path: str) -> Path:
    """A path as the client names it (under the mount point, or relative to it) inside data_root()."""
    mount = Path(VOLUME_PATH)
    if Path(path).is_absolute():
        path = Path(path).relative_to(mount).as_posix() if Path(path).is_relative_to(mount) else path
    return inside(data_root(), str(path))


def relative(path: Path) -> str:
    """A path as the volume names it: relative to the mount point."""
    return Path(path).resolve().relative_to(data_root().resolve()).as_posix()


def located(request: dict, *keys: str) -> dict:
    """The request with these paths and its base model (a directory on the volume, or a model id) inside the
    mount."""
    found = {key: str(on_volume(request[key])) for key in keys if request.get(key)}
    base = request.get("base_model")
    if base and (Path(base).is_absolute() or (data_root() / base).exists()):
        found["base_model"] = str(on_volume(base))
    return request | found


# ---- Records ----


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, value: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(value))
    partial.replace(path)


# ---- While the trainer runs ----


@contextmanager
def committing_checkpoints(run_dir: Path, trainer_log: Path) -> Iterator[list[str]]:
    """Commit the volume whenever a complete checkpoint appears (a preempted run resumes from it), with the
    trainer's log copied beside it and the call's heartbeat every few minutes (clients tell a running call
    from a lost one by it). A commit that fails is logged and tried again at the next look: the thread never
    ends early, and the log stays on local disk because a reload (which commit() does) fails while a file
    on the volume is open. Yields the names of the checkpoints committed while the trainer ran."""
    from motioncoach.training.checkpoints import latest_resumable_checkpoint

    committed: list[str] = []
    stop = threading.Event()
    seen = latest_resumable_checkpoint(run_dir)  # a resumed run's old checkpoints are committed already
    beat = time.monotonic()

    def publish() -> None:
        copy_trainer_log(trainer_log, run_dir)
        record = read_json(run_dir / CALL_RECORD) or {}
        write_json(run_dir / CALL_RECORD, record | {"heartbeat": time.time()})
        commit()

    def watch() -> None:
        nonlocal seen, beat
        failures = 0
        while not stop.wait(CHECKPOINT_POLL_SECONDS):
            latest = latest_resumable_checkpoint(run_dir)
            if latest == seen and time.monotonic() - beat <= HEARTBEAT_SECONDS and not failures:
                continue
            try:
                publish()
            except Exception as exc:  # noqa: BLE001 - a failed commit is retried; the thread must live on
                failures += 1
                where = latest.name if latest else run_dir.name
                log.warning("committing %s failed (%s, %d in a row); trying again in %.0f s",
                            where, exc, failures, CHECKPOINT_POLL_SECONDS)  # fmt: skip
                continue
            if latest is not None and latest != seen:
                committed.append(latest.name)
            seen, beat, failures = latest, time.monotonic(), 0

    thread = threading.Thread(target=watch, name="checkpoint-commits", daemon=True)
    thread.start()
    try:
        yield committed
    finally:
        stop.set()
        thread.join()
        copy_trainer_log(trainer_log, run_dir)


def copy_trainer_log(trainer_log: Path, run_dir: Path) -> None:
    """The trainer's log, kept on local disk while it is written, copied beside the run's checkpoints."""
    if Path(trainer_log).is_file():
        partial = run_dir / f".{TRAINER_LOG}.partial"
        shutil.copyfile(trainer_log, partial)
        partial.replace(run_dir / TRAINER_LOG)
