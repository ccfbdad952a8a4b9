"""Process-wide settings the local path needs, applied from code so users never have to."""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_DEFAULTS = {
    # Ultralytics otherwise pip-installs missing packages at run time.
    "YOLO_AUTOINSTALL": "False",
    # The tiny model and datasets are local; without these, HF libraries try the Hub first. An explicit
    # request for the Hub (an upload, a model given by repo id) goes out anyway (publish.hub_reachable).
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
# Prefect settings the CLI needs from any working directory (pyproject.toml sets them for the repo root).
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "motioncoach,remote",
    # Offline machines cannot reach the telemetry endpoint; without this each run logs an error.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


def apply_local_defaults() -> None:
    """Set the offline defaults, leaving anything the user set alone."""
    for name, value in {**OFFLINE_DEFAULTS, **PREFECT_DEFAULTS}.items():
        os.environ.setdefault(name, value)
    config_dir = Path.home() / ".cache" / "motioncoach" / "ultralytics"
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))


def resolve_dir(path: str | Path) -> Path:
    """An absolute directory path, created if needed: flows may run in another working directory."""
    resolved = Path(path).expanduser().resolve()
    resolved.mkdir(parents=True, exist_ok=True)
    return resolved
