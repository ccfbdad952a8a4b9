"""build-dataset: download, filter, label, split."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from motioncoach.config import (
    LabelConfig,
    LabelerName,
    PoseFilterConfig,
    Profile,
    SourceConfig,
    SplitConfig,
    with_labeler,
)
from motioncoach.dataset import SplitSummary
from motioncoach.lock import data_dir_lock
from motioncoach.runtime import apply_local_defaults, resolve_dir
from tasks.dataset import split, write_dataset
from tasks.labels import label_images, preflight
from tasks.pose import filter_images
from tasks.sources import find_images
from tasks.storage import persist_in


@flow(name="build-dataset", description="Find images, keep single-person poses, label them, split 90/10.")
def build_dataset(
    source: str = "samples",
    labeler: LabelerName = "rules",
    data_dir: Path = Path("./data"),
    max_samples: int = 2500,
    profile: Profile = Profile.local,
    labeling: LabelConfig | None = None,
) -> SplitSummary:
    apply_local_defaults()
    label_config = with_labeler(labeling, labeler)
    preflight(label_config)
    data = resolve_dir(data_dir)
    with data_dir_lock(data, f"build-dataset run {flow_run.name!r}"):
        images = persist_in(data, find_images)(SourceConfig(source=source, max_samples=max_samples), data)
        poses = persist_in(data, filter_images)(images, PoseFilterConfig(), data)
        labels = persist_in(data, label_images)(poses.kept, label_config, data)
        dataset = persist_in(data, write_dataset)(labels, data)
        return persist_in(data, split)(dataset, SplitConfig(), data)
