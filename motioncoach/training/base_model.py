"""The base model as a local directory: `swift sft` given a hub id would download it from ModelScope."""

from __future__ import annotations

import logging
from pathlib import Path

from motioncoach.errors import ConfigurationError

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".download-complete"


def local_model_dir(repo_id: str, models_dir: Path) -> Path:
    """Where ensure_local_model() keeps repo_id: models_dir/<owner>/<name>."""
    owner, _, name = repo_id.partition("/")
    if not owner or not name or "/" in name or ".." in (owner, name):
        raise ConfigurationError(f"base_model {repo_id!r} is not a Hugging Face model id of the form owner/name.")
    return Path(models_dir) / owner / name


def hub_model_id(base_model: str) -> str | None:
    """The Hub id a base model came from: the id itself, or owner/name of a copy that
    ensure_local_model() laid out as .../models/<owner>/<name> (on the Modal volume, say)."""
    parts = Path(base_model).parts
    if not Path(base_model).is_absolute() and len(parts) == 2 and not Path(base_model).exists():
        return base_model
    if len(parts) >= 3 and parts[-3] == "models":
        return f"{parts[-2]}/{parts[-1]}"
    return None


def ensure_local_model(repo_id: str, models_dir: Path) -> Path:
    """A complete copy of the Hub model repo_id under models_dir, downloaded once (HF_TOKEN from the env).

    A repo_id that is an existing directory is a model already in place, and is returned as is.
    """
    if Path(repo_id).is_dir():
        return Path(repo_id)
    target = local_model_dir(repo_id, models_dir)
    if (target / COMPLETE_MARKER).is_file():
        return target
    from huggingface_hub import snapshot_download  # resumes a partial download in place

    log.info("downloading %s to %s", repo_id, target)
    snapshot_download(repo_id, local_dir=target)
    (target / COMPLETE_MARKER).write_text(repo_id)
    return target
