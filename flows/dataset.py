"""build-dataset: download, filter, label, split."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import State

from flows.parameters import AuditSize, MaxSamples, audit_size, run_name
from motioncoach.config import (
    LabelerName,
    LabelingSettings,
    Profile,
    SourceConfig,
    SplitConfig,
    default_labeler,
    default_source,
    pose_filter_config,
    with_labeler,
)
from motioncoach.dataset import SplitSummary, dataset_on_disk, split_on_disk
from motioncoach.labels.outcomes import LabelReport
from motioncoach.runtime import apply_local_defaults, resolve_dir
from tasks.audit import apply_verdicts, audit_labels
from tasks.dataset import split, write_dataset
from tasks.dataset_on_modal import write_dataset_on_modal
from tasks.labels import estimate_labels, estimated, label_images_on_modal, labeling_task, preflight, waiting_for_labels
from tasks.locks import cancel_paid_calls, hold_data_dir
from tasks.pose import filter_images
from tasks.sources import find_images
from tasks.storage import persist_in


@flow(
    name="build-dataset",
    description="Find images, keep single-person poses, label them, split 90/10, and (with audit) wait for people "
    "to judge a sample of the labels. Ends 'Waiting for labels' when labels are still to come (a Gemini batch job), "
    "or 'Awaiting audit' when nobody can answer here: the next run goes on.",
    flow_run_name=run_name,
    on_cancellation=[cancel_paid_calls],
    on_crashed=[cancel_paid_calls],
)
def build_dataset(
    source: str | None = None,
    labeler: LabelerName | None = None,
    data_dir: Path = Path("./data"),
    max_samples: MaxSamples = 2500,
    profile: Profile = Profile.local,
    labeling: LabelingSettings | None = None,
    audit: AuditSize = None,
    estimate: bool = False,
) -> SplitSummary | State:
    """Find images, keep single-person poses, label them and split 90/10; people judge a sample of the labels.

    Args:
        source: 'samples' (offline photos), 'kaggle', or a folder with one sub-folder per activity. Empty: samples, or
            kaggle on the modal profile.
        labeler: Who writes the labels: rules (offline), gemini, openrouter, or consensus (both). Empty: rules, or
            gemini on the modal profile.
        data_dir: Where images, caches, labels and the dataset live, on the worker's machine.
        max_samples: Images to use (at least 1), spread evenly over activities.
        profile: Where heavy steps run: local (the worker) or modal (Modal functions on the volume).
        labeling: Teacher settings: models, concurrency, containers, rate, retries, budgets, batch, prices.
        audit: Labels people judge before the dataset is used (0 or more, stratified by activity; the run waits for
            their verdicts in its input form). Empty: 0, or 30 on the modal profile.
        estimate: Price the labeling and stop: the images to label, requests, tokens and cost; nothing is sent.
    """
    apply_local_defaults()
    source = source or default_source(profile)  # modal: kaggle and gemini, the real run
    label_config = with_labeler(labeling, labeler or default_labeler(profile))
    preflight(label_config, profile, data_dir)
    data = resolve_dir(data_dir)
    with hold_data_dir(data, f"build-dataset run {flow_run.name!r}", profile):
        images = persist_in(data, find_images)(SourceConfig(source=source, max_samples=max_samples), data, profile)
        poses = persist_in(data, filter_images)(images, pose_filter_config(profile), data, profile)
        if estimate:
            return estimated(estimate_labels(poses.kept, label_config, data, profile))
        if profile == Profile.modal:  # labels, rows and split are written on the volume, then copied here
            labels = label_images_on_modal(poses.kept, label_config, data)
        else:
            labels = persist_in(data, labeling_task(label_config, poses.kept, data))(poses.kept, label_config, data)
        if not labels.labeled and (waiting := waiting_for_labels(labels, label_config)):
            return waiting
        summary = _write(apply_verdicts(labels, data, profile), data, profile)
        audited = audit_labels(audit_size(audit, profile), data, profile)
        if isinstance(audited, State):
            return audited
        if audited:  # people rejected or approved labels just now: the dataset without the rejected ones
            summary = _write(apply_verdicts(labels, data, profile), data, profile)
        return waiting_for_labels(labels, label_config) or summary


def _write(labels: LabelReport, data: Path, profile: Profile) -> SplitSummary:
    """The dataset and its split from these labels (on the volume, and copied here, on Modal)."""
    if profile == Profile.modal:
        return persist_in(data, write_dataset_on_modal)(labels, SplitConfig(), data)
    # A cached result is only as good as its files: written again when they are gone.
    dataset = persist_in(data, write_dataset, refresh=not dataset_on_disk(data))(labels, data)
    return persist_in(data, split, refresh=not split_on_disk(data))(dataset, SplitConfig(), data)
