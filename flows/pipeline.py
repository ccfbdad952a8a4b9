"""motioncoach-pipeline: the dataset, then training, evaluation and release."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Completed

from flows.dataset import build_dataset
from flows.finetune import finetune
from motioncoach.config import LabelConfig, LabelerName, Profile, default_labeler, with_labeler
from motioncoach.lock import data_dir_lock
from motioncoach.publish import ReleaseConfig, with_release_flags
from motioncoach.runtime import resolve_dir
from tasks.hub import forward_state, hub_preflight
from tasks.labels import WAITING, preflight
from tasks.training import cancel_training_on_modal


@flow(
    name="motioncoach-pipeline",
    description="The whole pipeline: dataset, LoRA training, evaluation, release.",
    on_cancellation=[cancel_training_on_modal],
    on_crashed=[cancel_training_on_modal],
)
def pipeline(
    source: str | None = None,
    labeler: LabelerName | None = None,
    data_dir: Path = Path("./data"),
    adapter_dir: Path = Path("./lora-adapter"),
    max_samples: int = 2500,
    skip_train: bool = False,
    profile: Profile = Profile.local,
    labeling: LabelConfig | None = None,
    gate: bool = True,
    push_dataset: bool = False,
    release: ReleaseConfig | None = None,
    max_download_mb: int = 2000,
    smoke: bool = False,
) -> Path | None:
    # Missing keys fail now, before anything is downloaded or a data dir is created.
    preflight(with_labeler(labeling, labeler or default_labeler(profile)), profile)
    if not skip_train:
        hub_preflight(with_release_flags(release, gate=gate, push_dataset=push_dataset), profile, data_dir)
    # Held across both sub-flows, so no other run can change the dataset between them.
    with data_dir_lock(resolve_dir(data_dir), f"motioncoach-pipeline run {flow_run.name!r}"):
        built = build_dataset(
            source=source,
            labeler=labeler,
            data_dir=data_dir,
            max_samples=max_samples,
            profile=profile,
            labeling=labeling,
            return_state=True,
        )
        if built.name == WAITING:  # training waits for every label: the next run collects them, then trains
            return Completed(name=WAITING, message=f"{built.message} Training starts once they are collected.")
        built.result()  # a failed dataset fails the pipeline here
        if skip_train:
            return None
        finished = finetune(
            data_dir=data_dir,
            adapter_dir=adapter_dir,
            profile=profile,
            gate=gate,
            push_dataset=push_dataset,
            release=release,
            max_download_mb=max_download_mb,
            smoke=smoke,
            return_state=True,
        )
        return forward_state(finished)  # the pipeline ends as finetune did: Published, or Kept local and why
