"""The dataset as a Hub dataset repo: the splits, the images they name, a card and the terms."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from motioncoach.dataset import SplitSummary, read_jsonl
from motioncoach.publish.card import CARD_FILE, dataset_card, terms_markdown
from motioncoach.publish.lineage import Lineage

STAGING_DIR = "release/dataset"


def stage_dataset(data_dir: Path, splits: SplitSummary, lineage: Lineage, dest: Path | None = None) -> Path:
    """Lay out train.jsonl, val.jsonl, images/, README.md and LICENSE.md in dest (replacing it)."""
    data_dir = Path(data_dir)
    dest = Path(dest) if dest else data_dir / STAGING_DIR
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name, split in (("train.jsonl", splits.train.path), ("val.jsonl", splits.val.path)):
        shutil.copyfile(split, dest / name)
        for row in read_jsonl(split):
            for image in row["images"]:  # relative to the data dir, and so to the repo root
                _link_or_copy(data_dir / image, dest / image)
    dataset_card(lineage).save(dest / CARD_FILE)
    (dest / "LICENSE.md").write_text(terms_markdown(lineage))
    return dest


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)  # same file system: no second copy of every photo
    except OSError:
        shutil.copyfile(source, target)
