"""Modal-level faults injected into a rehearsal: MOTIONCOACH_REHEARSAL_FAULTS="FAULT@TARGET[:N],...".

- oom@train: the next training run's swift fails with a CUDA out-of-memory error;
- preempt@train:N: the training container is killed right after checkpoint N is committed, and the
  input is restarted as Modal restarts a preempted input;
- connection@get:N: the next N FunctionCall.get calls raise modal's ConnectionError;
- error@volume-read:N: the next N client reads of a volume file raise a modal error;
- stale@deploy: the deployed app reports an older version than the checkout's;
- lost-spawn@train: the next training spawn creates its call, and the answer to the spawn is lost (the
  client sees modal's ConnectionError);
- internal@get: the next FunctionCall.get finds its call ended in INTERNAL_FAILURE (modal's InternalFailure);
- commit-fail@train:N: the next N volume commits in a training container fail;
- warm@train: the next training call starts at once, on a warm container, before spawn returns.

Each fault fires once: the rehearsal volume remembers what fired (.rehearsal/faults.json), so a rerun
with the same variable does not see it again.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FAULTS_ENV = "MOTIONCOACH_REHEARSAL_FAULTS"
FAULTS_FILE = ".rehearsal/faults.json"
KNOWN = {
    "oom@train", "preempt@train", "connection@get", "error@volume-read", "stale@deploy", "lost-spawn@train",
    "internal@get", "commit-fail@train", "warm@train",
}  # fmt: skip
_SPEC = re.compile(r"^(?P<fault>[a-z-]+@[a-z-]+)(?::(?P<n>\d+))?$")


class FaultSpecError(ValueError):
    """MOTIONCOACH_REHEARSAL_FAULTS names a fault that does not exist, or is malformed."""


def parse(text: str) -> dict[str, int]:
    """'oom@train,connection@get:3' -> {'oom@train': 1, 'connection@get': 3}."""
    faults: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _SPEC.match(item)
        if not match or match.group("fault") not in KNOWN:
            raise FaultSpecError(
                f"{FAULTS_ENV}: {item!r} is not one of {', '.join(sorted(KNOWN))} (as FAULT@TARGET[:N])"
            )
        faults[match.group("fault")] = int(match.group("n") or 1)
    return faults


@contextmanager
def _record(root: Path) -> Iterator[dict]:
    """The faults record, locked while it is read and written back."""
    path = Path(root) / FAULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            record = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            record = {}
        yield record
        path.write_text(json.dumps(record, indent=2))


def arm(root: Path, text: str | None = None) -> None:
    """Arm the faults the variable names that have not been armed on this volume before."""
    wanted = parse(os.environ.get(FAULTS_ENV, "") if text is None else text)
    if not wanted:
        return
    with _record(root) as record:
        for fault, count in wanted.items():
            key = f"{fault}:{count}"
            if key not in record.setdefault("armed", {}):
                record["armed"][key] = {"fault": fault, "left": count}


def fire(root: Path, fault: str) -> bool:
    """One firing of a counted fault (connection@get:N, error@volume-read:N): True while firings are left."""
    with _record(root) as record:
        for entry in record.get("armed", {}).values():
            if entry["fault"] == fault and entry["left"] > 0:
                entry["left"] -= 1
                return True
    return False


def fire_once(root: Path, fault: str) -> int | None:
    """Fire a one-shot fault (oom@train, preempt@train:N, stale@deploy): its N, or None when not armed."""
    with _record(root) as record:
        for entry in record.get("armed", {}).values():
            if entry["fault"] == fault and entry["left"] > 0:
                value, entry["left"] = entry["left"], 0
                return value
    return None


def armed(root: Path, fault: str) -> int | None:
    """The N of an armed fault that has not fired yet, without firing it."""
    with _record(root) as record:
        for entry in record.get("armed", {}).values():
            if entry["fault"] == fault and entry["left"] > 0:
                return entry["left"]
    return None
