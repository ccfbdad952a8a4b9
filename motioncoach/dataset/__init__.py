"""The training dataset: MS-Swift rows and their train/validation split."""

from motioncoach.dataset.rows import DATASET_FILE, DatasetFile, build_dataset, dataset_on_disk, read_jsonl
from motioncoach.dataset.split import SPLITS_DIR, SplitSummary, load_split, split_dataset, split_on_disk

__all__ = [
    "DATASET_FILE",
    "DatasetFile",
    "SPLITS_DIR",
    "SplitSummary",
    "build_dataset",
    "dataset_on_disk",
    "load_split",
    "read_jsonl",
    "split_dataset",
    "split_on_disk",
]
