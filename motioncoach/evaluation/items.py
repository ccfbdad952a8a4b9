"""The validation rows as evaluation items: the prompt the model sees, the teacher's label, the pose.

Grounding and agreement need the detected pose. It is taken from the YOLO cache entry whose
keypoints render to exactly the prompt's keypoint lines (full confidences and image size); when no
entry matches (a cache from other settings, or none), it is rebuilt from the prompt itself: the
listed keypoints at confidence 1, the image size read from the stored image.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from PIL import Image
from pydantic import BaseModel, ValidationError

from motioncoach.dataset import read_jsonl
from motioncoach.dataset.prompt import pose_block
from motioncoach.labels.schema import CoachingLabel, read_label
from motioncoach.pose.cache import CACHE_FILE_NAME, CacheEntry
from motioncoach.records import KEYPOINT_NAMES, Keypoint, PoseSample
from motioncoach.serving.prompt import Prompt, row_turns

_ACTIVITY = re.compile(r"^Activity: (.*)$", re.MULTILINE)
_KEYPOINT = re.compile(r"^([a-z]+(?:_[a-z]+)*): \[([\d.]+), ([\d.]+)\]$", re.MULTILINE)


class EvalItem(BaseModel):
    """One validation row, ready to prompt and to score."""

    key: str  # the row's image path, relative to the data dir: unique per row
    image: Path
    system: str
    user: str  # the user turn without the image tag
    teacher: CoachingLabel
    sample: PoseSample
    pose_from: Literal["yolo_cache", "prompt"]

    def prompt(self, max_pixels: int) -> Prompt:
        """The row's question as training asked it: its system and user turns, its stored (upright) photo."""
        return Prompt(key=self.key, system=self.system, user=self.user, image=self.image, max_pixels=max_pixels)


def load_items(val_path: Path, data_dir: Path, max_rows: int | None = None) -> tuple[list[EvalItem], list[str]]:
    """The evaluable rows of a split file, and a reason for each row that is not."""
    return rows_to_items(read_jsonl(val_path)[:max_rows], data_dir)


def rows_to_items(rows: list[dict], data_dir: Path) -> tuple[list[EvalItem], list[str]]:
    """Dataset rows (train, validation, pose_dataset.jsonl) as items, and a reason for each row that is not one."""
    data_dir = Path(data_dir)
    cache = _kept_entries(data_dir / CACHE_FILE_NAME)
    items, skipped = [], []
    for number, row in enumerate(rows, start=1):
        try:
            items.append(_item(row, data_dir, cache))
        except (KeyError, IndexError, TypeError, ValueError, OSError) as exc:
            skipped.append(f"row {number}: {exc}")
    return items, skipped


def _item(row: dict, data_dir: Path, cache: dict[str, list[CacheEntry]]) -> EvalItem:
    turns = row_turns(row)
    key, user = turns.key, turns.user
    image = data_dir / key
    if turns.assistant is None:
        raise ValueError("the row has no assistant turn (the teacher's label)")
    try:
        teacher = read_label(turns.assistant)  # the dataset's own label, as it was checked when written
    except ValidationError as exc:
        raise ValueError(f"the teacher's label does not parse ({exc.error_count()} errors)") from None
    activity = _ACTIVITY.search(user)
    if not activity:
        raise ValueError("the user turn names no activity")
    sha256 = Path(key).stem
    sample = _from_cache(cache.get(sha256, []), user, activity.group(1), image)
    pose_from = "yolo_cache" if sample else "prompt"
    return EvalItem(
        key=key,
        image=image,
        system=turns.system,
        user=user,
        teacher=teacher,
        sample=sample or sample_from_prompt(user, activity.group(1), sha256, image),
        pose_from=pose_from,
    )


def _kept_entries(path: Path) -> dict[str, list[CacheEntry]]:
    """Kept entries of the YOLO cache by image hash; read-only, and an unreadable cache is no cache."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["entries"].values()
    except (OSError, ValueError, KeyError, AttributeError):
        return {}
    by_sha: dict[str, list[CacheEntry]] = {}
    for raw in entries:
        try:
            entry = CacheEntry.model_validate(raw)
        except ValidationError:
            continue
        if entry.outcome == "kept" and entry.keypoints and entry.width and entry.height:
            by_sha.setdefault(entry.sha256, []).append(entry)
    return by_sha


def _from_cache(entries: list[CacheEntry], user: str, activity: str, image: Path) -> PoseSample | None:
    """The cached detection whose keypoints are exactly the ones the prompt lists."""
    for entry in entries:
        sample = PoseSample(
            sha256=entry.sha256,
            source_path=Path(entry.source_path),
            activity=activity,
            width=entry.width,
            height=entry.height,
            box_conf=entry.box_conf or 0.0,
            keypoints=tuple(Keypoint(name=n, x=x, y=y, conf=c) for n, x, y, c in entry.keypoints),
        )
        if user.endswith("\n" + pose_block(sample)):  # the prompt ends with its pose block
            return sample
    return None


def sample_from_prompt(user: str, activity: str, sha256: str, image: Path) -> PoseSample:
    """The pose as the prompt states it: listed keypoints at confidence 1, the rest absent."""
    listed = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in _KEYPOINT.finditer(user)}
    if not listed:
        raise ValueError("the user turn lists no keypoints")
    with Image.open(image) as img:
        width, height = img.size
    keypoints = tuple(
        Keypoint(name=n, x=listed[n][0], y=listed[n][1], conf=1.0)
        if n in listed
        else Keypoint(name=n, x=0, y=0, conf=0)
        for n in KEYPOINT_NAMES
    )
    return PoseSample(
        sha256=sha256,
        source_path=image,
        activity=activity,
        width=width,
        height=height,
        box_conf=1.0,
        keypoints=keypoints,
    )
