"""The modal profile without a Modal account: a rehearsal as strict as Modal, before paying for the real run.

A directory stands in for the volume `qwen-finetune-data`: it holds what has been committed. Each
function call runs in processes of its own (`python -m remote.rehearsal.supervisor`, which starts an
attempt per try), and each attempt sees the volume as of its start or its last reload(), in a private
copy: its writes reach the directory, and so other calls and the client, only when it commits (the
last commit of a file wins, as on Modal). Calls get the retries and timeouts their function declares,
an environment holding only the keys of the secrets their function mounts (from the caller's
variables of those names) and their image's variables, and Modal's exception types. cancel()
returns at once. The client reaches the volume only through the volume API.

Faults a paid run meets can be rehearsed: MOTIONCOACH_REHEARSAL_FAULTS (remote.rehearsal.faults).

Prefect-free; modal is imported only for its exception and file-entry types.
"""

from __future__ import annotations

import os
from pathlib import Path

REHEARSAL_ENV = "MOTIONCOACH_REHEARSE_VOLUME"
# Optimizer steps a rehearsed training run takes (default: the local recipe's): more, to have time to
# cancel or preempt a running call.
TRAIN_STEPS_ENV = "MOTIONCOACH_REHEARSAL_TRAIN_STEPS"
CALLS_DIR = ".rehearsal/calls"
# A secret as `modal secret create` would hold it: .rehearsal/secrets/<name>.json, {"KEY": "value", ...}.
# Without that file the secret's keys are taken from the caller's variables of those names.
SECRETS_DIR = ".rehearsal/secrets"


def rehearse_on(folder: Path) -> None:
    """Make this process's modal profile a rehearsal on folder (what --rehearse-volume does)."""
    os.environ[REHEARSAL_ENV] = str(Path(folder).expanduser().resolve())


def rehearsal_root() -> Path | None:
    """The directory a rehearsal uses as the volume, when one was asked for (--rehearse-volume)."""
    value = os.environ.get(REHEARSAL_ENV)
    return Path(value).expanduser().resolve() if value else None
