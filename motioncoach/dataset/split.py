"""A deterministic train/validation split in which a picture never lands on both sides."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import BaseModel

from motioncoach.config import SplitConfig
from motioncoach.dataset.near_duplicates import group_near_duplicates
from motioncoach.dataset.rows import DatasetFile, read_jsonl, write_jsonl
from motioncoach.errors import MissingDatasetError, MotionCoachError

SPLITS_DIR = "splits"
_ACTIVITY = re.compile(r"Activity: ([^\n]*)")


class SplitSummary(BaseModel):
    train: DatasetFile
    val: DatasetFile


def image_key(row: dict) -> str:
    """What makes two rows the same picture: their content-addressed image paths."""
    return "|".join(sorted(Path(p).stem for p in row["images"]))


def _score(key: str, seed: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def row_activity(row: dict) -> str:
    """The activity a row's user turn names ('Activity: squat'), or '' when it names none."""
    for message in row.get("messages", []):
        if message.get("role") == "user":
            match = _ACTIVITY.search(message.get("content") or "")
            if match:
                return match.group(1).strip()
    return ""


def split_dataset(dataset: Path, config: SplitConfig, out_dir: Path) -> SplitSummary:
    """Assign each picture to a side by a salted hash, stratified by activity.

    A picture is a group of near-identical images (the same photo resized or re-encoded, frames a
    moment apart): a group is never split. A group goes to validation when its hash falls under
    val_fraction, so adding images never moves old ones; an activity with enough groups that the hash
    gave none is given its lowest-scoring one, so every activity is validated. With few images the
    hash may leave a side empty; then the group closest to the threshold moves over.
    """
    rows = read_jsonl(dataset)
    images: dict[str, list[Path]] = {}
    activity: dict[str, str] = {}
    for row in rows:
        key = image_key(row)
        images.setdefault(key, [Path(dataset).parent / p for p in row["images"]])
        activity.setdefault(key, row_activity(row))
    if len(images) < 2:
        raise MotionCoachError(
            f"{dataset} holds {len(images)} distinct image(s); a train/validation split needs at least 2. "
            "Add images (--source, --max-samples) and run `motioncoach dataset` again."
        )
    group_of = group_near_duplicates(images)
    groups = sorted(set(group_of.values()), key=lambda g: _score(g, config.seed))
    val_groups = {g for g in groups if _score(g, config.seed) < config.val_fraction}
    by_activity: dict[str, list[str]] = {}
    for group in groups:
        by_activity.setdefault(activity[group], []).append(group)
    for members in by_activity.values():  # sorted by score already
        if len(members) * config.val_fraction >= 1 and not val_groups.intersection(members):
            val_groups.add(members[0])
    if not val_groups:
        val_groups = {groups[0]}
    elif len(val_groups) == len(groups):
        val_groups.discard(groups[-1])
    out_dir = Path(out_dir)
    train = [r for r in rows if group_of[image_key(r)] not in val_groups]
    val = [r for r in rows if group_of[image_key(r)] in val_groups]
    train_path, val_path = out_dir / "train.jsonl", out_dir / "val.jsonl"
    return SplitSummary(
        train=DatasetFile.of(train_path, write_jsonl(train, train_path)),
        val=DatasetFile.of(val_path, write_jsonl(val, val_path)),
    )


def load_split(data_dir: Path) -> SplitSummary:
    """The split an earlier `motioncoach dataset` wrote, with fresh content hashes."""
    out_dir = Path(data_dir) / SPLITS_DIR
    paths = out_dir / "train.jsonl", out_dir / "val.jsonl"
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise MissingDatasetError(
            f"No dataset in {data_dir}: {missing[0]} is missing. Run `motioncoach dataset --data-dir {data_dir}` "
            "first (or `motioncoach run`, which does both)."
        )
    train, val = (DatasetFile.of(p, len(read_jsonl(p))) for p in paths)
    return SplitSummary(train=train, val=val)


def split_on_disk(data_dir: Path) -> bool:
    """Whether the split files a cached result names are still there."""
    out_dir = Path(data_dir) / SPLITS_DIR
    return (out_dir / "train.jsonl").is_file() and (out_dir / "val.jsonl").is_file()
