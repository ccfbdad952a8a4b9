"""What a release records about serving it, and how `coach` and `serve` follow it.

A release is shown photos at the pixels it was trained on, and its photos' poses are detected with the
model its dataset was filtered with: its lineage.json says both (beside an adapter, or carried into a
merged folder, whose merge record repeats the pixels). Told otherwise (--max-pixels, --pose-weights), the
commands serve as told and say what differs from the record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from motioncoach.errors import ConfigurationError

LINEAGE_FILE = "lineage.json"  # written by motioncoach.publish when a run releases; read here
MERGE_RECORD = "motioncoach-merge.json"  # in a merged folder: what it was merged from, at which pixels


def read_lineage(folders: Iterable[Path | None]) -> dict:
    """The first readable lineage.json in folders, or {}."""
    for folder in folders:
        if folder is None:
            continue
        try:
            return json.loads((Path(folder) / LINEAGE_FILE).read_text())
        except (OSError, ValueError):
            continue
    return {}


def recorded_max_pixels(folders: Iterable[Path | None]) -> int | None:
    """MAX_PIXELS of the run, from a lineage.json or a merge record in folders; None without a record."""
    folders = [Path(f) for f in folders if f is not None]
    try:
        return int(read_lineage(folders)["training"]["config"]["max_pixels"])
    except (KeyError, TypeError, ValueError):
        pass
    for folder in folders:
        try:
            return int(json.loads((folder / MERGE_RECORD).read_text())["max_pixels"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def recorded_pose(folders: Iterable[Path | None]) -> dict | None:
    """{"weights": name, "sha256": ...} of the pose model the release's dataset was filtered with, or None."""
    pose = read_lineage(folders).get("pose")
    return pose if isinstance(pose, dict) and pose.get("weights") else None


@dataclass(frozen=True)
class ServingSettings:
    """The pixels and pose weights a release is served with, and what differs from its record, in words."""

    max_pixels: int
    pose_weights: str  # a local file, resolved and checked
    notes: list[str] = field(default_factory=list)


def serving_settings(
    folders: Iterable[Path | None], *, max_pixels: int | None = None, pose_weights: str | None = None
) -> ServingSettings:
    """The release's own pixels and pose model unless forced; ConfigurationError when the pose model is not here."""
    from motioncoach.config import PoseFilterConfig, TrainConfig
    from motioncoach.pose.weights import WeightsError, resolve_weights, weights_sha256

    folders = list(folders)
    where = next((str(f) for f in folders if f is not None), "the model")
    notes = []
    recorded = recorded_max_pixels(folders)
    if max_pixels is None:
        max_pixels = recorded or TrainConfig().max_pixels
        if recorded is None:
            notes.append(f"{where} records no training pixels: photos are shown at the recipe's {max_pixels}")
    elif recorded is not None and max_pixels != recorded:
        notes.append(f"--max-pixels {max_pixels}: the release was trained on photos of at most {recorded} pixels")

    pose = recorded_pose(folders)
    chosen = pose_weights or (pose or {}).get("weights") or PoseFilterConfig().weights
    if pose is None:
        notes.append(f"{where} records no pose model: poses are detected with {Path(chosen).name}")
    try:
        path = resolve_weights(chosen)
    except WeightsError as exc:
        if pose_weights:
            raise ConfigurationError(f"--pose-weights {pose_weights}: {exc}") from None
        raise ConfigurationError(
            f"the release's dataset was filtered with {chosen}, which is not on this machine ({exc}): pass "
            "--pose-weights with that file, or --pose-weights yolo11n-pose.pt to detect poses otherwise than in "
            "training"
        ) from None
    if pose is not None and weights_sha256(path) != pose.get("sha256"):
        notes.append(
            f"--pose-weights {chosen}: the release's dataset was filtered with {pose['weights']} "
            f"(sha256 {str(pose.get('sha256'))[:12]}...), so poses are detected otherwise than in training"
        )
    return ServingSettings(max_pixels=max_pixels, pose_weights=str(path), notes=notes)
