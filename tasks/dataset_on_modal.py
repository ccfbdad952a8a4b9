"""Steps of the modal profile that have no local task to dispatch from."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from motioncoach.config import SplitConfig
from motioncoach.dataset import SplitSummary
from motioncoach.labels.outcomes import LabelReport
from tasks.dataset import publish_split
from tasks.storage import keyed


@task(name="write-dataset-on-modal", cache_policy=keyed("dataset", on_modal=True))
def write_dataset_on_modal(labels: LabelReport, config: SplitConfig, data_dir: Path) -> SplitSummary:
    """Write pose_dataset.jsonl and the 90/10 split on the volume, with copies in data_dir."""
    from remote import client as modal_client
    from remote import steps as modal_steps

    remote = modal_client.connect(data_dir)
    summary = modal_steps.write_dataset(remote, labels, config, Path(data_dir))
    get_run_logger().info(
        "%d train and %d validation rows in %s/ on the volume and in %s",
        summary.train.rows,
        summary.val.rows,
        remote.name,
        data_dir,
    )
    publish_split(summary, f"Train/validation split, written on the Modal volume under {remote.name}/ and copied here")
    return summary
