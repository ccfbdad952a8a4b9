"""A deterministic train/validation split in which an image never lands on both sides."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel

from motioncoach.config import SplitConfig
from motioncoach.dataset.rows import DatasetFile, read_jsonl, write_jsonl
from motioncoach.errors import MissingDatasetError, MotionCoachError

SPLITS_DIR = "splits"


class SplitSummary(BaseModel):
    train: DatasetFile
    val: DatasetFile


def image_key(row: dict) -> str:
    """What makes two rows the same picture: their content-addressed image paths."""
    return "|".join(sorted(Path(p).stem for p in row["images"]))


def _score(key: str, seed: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_dataset(dataset: Path, config: SplitConfig, out_dir: Path) -> SplitSummary:
    """Assign each distinct image to a side by a salted hash, so adding images never moves old ones.

    With few images the hash may leave a side empty; then the image closest to the threshold moves
    over, so there is always at least one validation row.
    """
    rows = read_jsonl(dataset)
    keys = sorted({image_key(r) for r in rows}, key=lambda k: _score(k, config.seed))
    if len(keys) < 2:
        raise MotionCoachError(
            f"{dataset} holds {len(keys)} distinct image(s); a train/validation split needs at least 2. "
            "Add images (--source, --max-samples) and run `motioncoach dataset` again."
        )
    val_keys = {k for k in keys if _score(k, config.seed) < config.val_fraction}
    if not val_keys:
        val_keys = {keys[0]}
    elif len(val_keys) == len(keys):
        val_keys.discard(keys[-1])
    out_dir = Path(out_dir)
    train = [r for r in rows if image_key(r) not in val_keys]
    val = [r for r in rows if image_key(r) in val_keys]
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
