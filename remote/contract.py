"""What the client and the containers agree on: the volume's layout, the records beside a training run, the
claims that give a run dir one owner, the freshness rule, and the app's version.

Imported on both sides of the Modal boundary (and by the rehearsal), so it imports nothing heavy.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from motioncoach.config import ModalConfig
from motioncoach.hashing import tree_sha256

SETTINGS = ModalConfig()
VOLUME_PATH = SETTINGS.volume_path  # where every function mounts the volume

# ---- The volume's layout, relative to the mount ----

MODELS_DIR = "models"
ADAPTERS_DIR = "adapters"
MERGED_DIR = "merged"
SERVING_FILE = "serving.json"  # what the coach endpoint serves (written by `motioncoach serve --profile modal`)
VLLM_LOGS_DIR = "logs/vllm"  # the endpoint's vLLM log of each start

# ---- Beside a training run's checkpoints ----

CALL_RECORD = "modal_call.json"  # the call that trains the run dir, its state and heartbeat
RESULT_FILE = "result.json"  # the run's result, once the call ends
TRAINER_LOG = "swift.log"  # swift's output, kept on local disk while it runs and copied at each commit
HEARTBEAT_SECONDS = 300.0
STALE_SECONDS = 3 * HEARTBEAT_SECONDS


def is_fresh(record: dict, now: float | None = None) -> bool:
    """A call record refreshed within STALE_SECONDS: its call is running, or was moments ago."""
    latest = max(record.get("at") or 0.0, record.get("heartbeat") or 0.0)
    return (time.time() if now is None else now) - latest < STALE_SECONDS


# ---- Claims: one owner per run dir and per data dir, put atomically in a modal.Dict ----

CLAIMS_DICT = "motioncoach-claims"  # a Dict of the workspace; the rehearsal keeps its stand-in on the volume


def run_claim(run_dir: str) -> str:
    """The claim key of a run dir (its path on the volume): whoever put it first trains there."""
    return f"run:{SETTINGS.volume_name}:{run_dir.strip('/')}"


def lease_claim(volume_name: str, data_dir_name: str) -> str:
    """The claim key of a data dir on a volume: the client holding it is the only one changing it."""
    return f"lease:{volume_name}:{data_dir_name}"


# ---- The app's version: a hash of what a deploy ships ----

ROOT = Path(__file__).resolve().parent.parent
# The domain package, the app's own modules and the images' requirements: what runs in the containers.
APP_SOURCES = (
    "motioncoach",
    "remote/app.py",
    "remote/container.py",
    "remote/contract.py",
    "remote/images.py",
    "remote/requirements",
)
APP_VERSION_VARIABLE = "MOTIONCOACH_APP_VERSION"


def checkout_version() -> str:
    """The version of this checkout's app, as a deploy from it would carry."""
    return tree_sha256(ROOT, APP_SOURCES)


def container_version() -> str:
    """The version a container's image carries."""
    return os.environ.get(APP_VERSION_VARIABLE, "")
