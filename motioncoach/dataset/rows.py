"""MS-Swift training rows: one conversation per labeled image."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel

from motioncoach.dataset.images import store_image
from motioncoach.dataset.prompt import system_prompt, user_prompt
from motioncoach.errors import DataLossError
from motioncoach.hashing import file_sha256
from motioncoach.labels.outcomes import LabelOutcome

DATASET_FILE = "pose_dataset.jsonl"


class DatasetFile(BaseModel):
    """A written JSONL file and its content hash, which later steps are keyed on."""

    path: Path
    sha256: str
    rows: int

    @classmethod
    def of(cls, path: Path, rows: int) -> DatasetFile:
        return cls(path=path, sha256=file_sha256(path), rows=rows)


def swift_row(outcome: LabelOutcome, image: str) -> dict:
    """{"messages": [system, user, assistant], "images": [image]} as `swift sft` reads it."""
    assert outcome.label is not None
    return {
        "messages": [
            {"role": "system", "content": system_prompt()},
            {"role": "user", "content": user_prompt(outcome.sample)},
            {"role": "assistant", "content": outcome.label.to_json()},
        ],
        "images": [image],
    }


def write_jsonl(rows: Iterable[dict], path: Path, *, may_empty: bool = False) -> int:
    """Write rows atomically: readers see the old file or the whole new one. Returns the count.

    Unless may_empty, a file holding rows is never replaced by an empty one (DataLossError): an
    empty result where there was data means an input went missing, not that the data is gone.
    """
    path = Path(path)
    rows = list(rows)
    if not rows and not may_empty:
        refuse_emptying(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    count = 0
    with open(partial, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
        f.flush()
        os.fsync(f.fileno())
    partial.replace(path)
    return count


def refuse_emptying(path: Path) -> None:
    """Raise DataLossError when path holds rows (nothing is written)."""
    try:
        with open(path) as f:
            existing = sum(1 for line in f if line.strip())
    except FileNotFoundError:
        return
    if existing:
        raise DataLossError(
            f"Refusing to replace {path} ({existing} rows) with an empty file: this run produced no rows, so "
            f"writing it would lose what is there. Nothing was changed. Check the step's inputs (the images "
            f"under --source, yolo_cache.json, the label store), or delete {path.name} to start over."
        )


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def build_dataset(labeled: Sequence[LabelOutcome], data_dir: Path) -> DatasetFile:
    """Copy each labeled image into the data dir and write pose_dataset.jsonl, one row per image."""
    data_dir = Path(data_dir)
    rows = []
    seen = set()
    for outcome in sorted(labeled, key=lambda o: str(o.sample.source_path)):
        if outcome.sample.sha256 in seen:  # one row per distinct image
            continue
        seen.add(outcome.sample.sha256)
        image = store_image(outcome.sample.source_path, outcome.sample.sha256, data_dir)
        rows.append(swift_row(outcome, image))
    path = data_dir / DATASET_FILE
    return DatasetFile.of(path, write_jsonl(rows, path))


def dataset_on_disk(data_dir: Path) -> bool:
    """Whether pose_dataset.jsonl and every image its rows name are still there."""
    path = Path(data_dir) / DATASET_FILE
    if not path.is_file():
        return False
    return all((Path(data_dir) / image).is_file() for row in read_jsonl(path) for image in row.get("images", []))
