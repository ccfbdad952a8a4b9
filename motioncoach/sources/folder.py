"""A folder of images laid out one activity per sub-folder, as Kaggle image datasets are."""

from __future__ import annotations

import re
from pathlib import Path

from motioncoach.errors import SourceError
from motioncoach.hashing import file_sha256
from motioncoach.records import ImageRecord


def activity_name(folder: str) -> str:
    """'Push_Up ' -> 'push up': one spelling per activity across datasets."""
    return re.sub(r"\s+", " ", folder.replace("_", " ")).strip().lower()


def scan_folder(root: Path) -> list[ImageRecord]:
    """Every visible file below root, with its activity and content hash, sorted by path.

    Files are not filtered by extension: whatever is not an image gets its rejection recorded by
    the pose filter instead of vanishing silently.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise SourceError(f"--source {root}: no such folder. Pass 'samples', 'kaggle' or an image folder.")
    records = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        folder = path.parent.name if path.parent != root else root.name
        records.append(ImageRecord(path=path, activity=activity_name(folder), sha256=file_sha256(path)))
    return records
