"""motioncoach-pipeline: the dataset, then training, then publishing."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from flows.dataset import build_dataset
from flows.finetune import finetune
from motioncoach.config import LabelConfig, LabelerName, Profile
from motioncoach.lock import data_dir_lock
from motioncoach.runtime import resolve_dir


@flow(name="motioncoach-pipeline", description="The whole pipeline: dataset, LoRA training, adapter.")
def pipeline(
    source: str = "samples",
    labeler: LabelerName = "rules",
    data_dir: Path = Path("./data"),
    adapter_dir: Path = Path("./lora-adapter"),
    max_samples: int = 2500,
    skip_train: bool = False,
    profile: Profile = Profile.local,
    labeling: LabelConfig | None = None,
) -> Path | None:
    # Held across both sub-flows, so no other run can change the dataset between them.
    with data_dir_lock(resolve_dir(data_dir), f"motioncoach-pipeline run {flow_run.name!r}"):
        build_dataset(
            source=source,
            labeler=labeler,
            data_dir=data_dir,
            max_samples=max_samples,
            profile=profile,
            labeling=labeling,
        )
        if skip_train:
            return None
        return finetune(data_dir=data_dir, adapter_dir=adapter_dir, profile=profile)
