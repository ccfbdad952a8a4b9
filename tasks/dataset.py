"""Turn labels into MS-Swift rows, then split them."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from motioncoach.config import SplitConfig
from motioncoach.dataset import SPLITS_DIR, DatasetFile, SplitSummary, build_dataset, split_dataset
from motioncoach.dataset.stats import split_statistics
from motioncoach.labels.outcomes import LabelReport
from tasks import reporting
from tasks.storage import keyed


@task(name="write-dataset", cache_policy=keyed("dataset"))
def write_dataset(labels: LabelReport, data_dir: Path) -> DatasetFile:
    """Write pose_dataset.jsonl, one conversation per labeled image."""
    dataset = build_dataset(labels.labeled, Path(data_dir))
    get_run_logger().info("%d rows in %s", dataset.rows, dataset.path)
    return dataset


@task(name="split-dataset", cache_policy=keyed("dataset"))
def split(dataset: DatasetFile, config: SplitConfig, data_dir: Path) -> SplitSummary:
    """Split 90/10 by image so that no picture is on both sides."""
    summary = split_dataset(dataset.path, config, Path(data_dir) / SPLITS_DIR)
    publish_split(summary, f"Train/validation split of {dataset.rows} rows")
    return summary


def publish_split(summary: SplitSummary, description: str) -> None:
    """The split-sizes and split-by-activity artifacts: rows per side, and what their labels teach."""
    reporting.table(
        "split-sizes",
        [
            {"split": "train", "rows": summary.train.rows, "file": f"{SPLITS_DIR}/{summary.train.path.name}"},
            {"split": "val", "rows": summary.val.rows, "file": f"{SPLITS_DIR}/{summary.val.path.name}"},
        ],
        description,
    )
    reporting.table(
        "split-by-activity",
        split_statistics(summary),
        "Rows per activity on each side, with what the labels teach: mean score of coached photos, "
        "abstain rate, cues naming a side and joint or a midline region, photos with nothing to correct",
    )
