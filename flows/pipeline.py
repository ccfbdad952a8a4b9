"""motioncoach-pipeline: the dataset, then training, evaluation and release."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Completed, State

from flows.dataset import build_dataset
from flows.finetune import finetune
from flows.parameters import AuditSize, MaxDownloadMb, MaxSamples, audit_size, run_name, teacher_of
from motioncoach.config import LabelerName, LabelingSettings, Profile, default_labeler, with_labeler
from motioncoach.publish import ReleaseSettings, with_release_flags
from motioncoach.runtime import resolve_dir
from tasks.audit import audit_labels
from tasks.hub import forward_state, hub_preflight
from tasks.labels import ESTIMATED, WAITING, preflight
from tasks.locks import cancel_paid_calls, hold_data_dir
from tasks.storage import persist_in


@flow(
    name="motioncoach-pipeline",
    description="The whole pipeline: dataset, LoRA training, evaluation, release.",
    on_cancellation=[cancel_paid_calls],
    on_crashed=[cancel_paid_calls],
    flow_run_name=run_name,
)
def pipeline(
    source: str | None = None,
    labeler: LabelerName | None = None,
    data_dir: Path = Path("./data"),
    adapter_dir: Path = Path("./lora-adapter"),
    max_samples: MaxSamples = 2500,
    skip_train: bool = False,
    profile: Profile = Profile.local,
    labeling: LabelingSettings | None = None,
    gate: bool = True,
    push_dataset: bool = False,
    release: ReleaseSettings | None = None,
    max_download_mb: MaxDownloadMb = 2000,
    smoke: bool = False,
    audit: AuditSize = None,
    benchmark: str | None = None,
    estimate: bool = False,
) -> State | None:
    """The whole pipeline: the dataset, then LoRA training, evaluation and the release.

    Args:
        source: 'samples' (offline photos), 'kaggle', or a folder with one sub-folder per activity. Empty: samples, or
            kaggle on the modal profile.
        labeler: Who writes the labels: rules (offline), gemini, openrouter, or consensus (both). Empty: rules, or
            gemini on the modal profile.
        data_dir: Where images, caches, labels and the dataset live, on the worker's machine.
        adapter_dir: Where the trained LoRA adapter and its card are placed.
        max_samples: Images to use (at least 1), spread evenly over activities.
        skip_train: Stop after the dataset is split.
        profile: Where heavy steps run: local (the worker) or modal (Modal functions on the volume).
        labeling: Teacher settings: models, concurrency, containers, rate, retries, budgets, batch, prices.
        gate: Upload the adapter only if it beats its base model on validation.
        push_dataset: Also upload the dataset (splits, images, card) to HF_DATASET_REPO_ID.
        release: The gate's rules (metrics, margin, minimum rows) and how uploads are made.
        max_download_mb: On Modal: download the adapter when it is at most this many MB (0 or more); a larger one
            stays on the volume.
        smoke: On Modal: a cheap real run on a small model on two GPUs under two processes, to prove the account,
            the multi-process launch and the checkpoint commits first.
        audit: Labels people judge before training (0 or more, stratified by activity; the run waits for their
            verdicts in its input form). Empty: 0, or 30 on the modal profile.
        benchmark: A human-labelled benchmark to score base, student and teacher on after the evaluation: a suite
            folder, or 'exact'. Empty: none (or release.benchmark).
        estimate: Price the labeling and stop: the images to label, requests, tokens and cost; nothing is sent.
    """
    # Missing keys fail now, before anything is downloaded or a data dir is created.
    preflight(with_labeler(labeling, labeler or default_labeler(profile)), profile, data_dir)
    if not skip_train:
        hub_preflight(with_release_flags(release, gate=gate, push_dataset=push_dataset), profile, data_dir)
    # Held across both sub-flows, so no other run can change the dataset between them.
    data = resolve_dir(data_dir)
    with hold_data_dir(data, f"motioncoach-pipeline run {flow_run.name!r}", profile):
        # The sub-flows' results live with the data: a retry (in a new container, or on a worker whose
        # Prefect home was cleaned) reads the finished build-dataset's result instead of failing.
        dataset = {"source": source, "labeler": labeler, "data_dir": data_dir, "max_samples": max_samples,
                   "profile": profile, "labeling": labeling, "audit": 0}  # fmt: skip
        built = persist_in(data, build_dataset)(**dataset, estimate=estimate, return_state=True)
        if built.name == ESTIMATED:
            return Completed(name=ESTIMATED, message=built.message)
        if built.name == WAITING:  # training waits for every label: the next run collects them, then trains
            return Completed(name=WAITING, message=f"{built.message} Training starts once they are collected.")
        built.result()  # a failed dataset fails the pipeline here
        # The audit waits here, in the top-level run: a deployment run suspends (a sub-flow cannot).
        audited = audit_labels(audit_size(audit, profile), data, profile)
        if isinstance(audited, State):
            return audited
        if audited:  # the dataset again, without what people rejected (the rest comes back Cached)
            persist_in(data, build_dataset)(**dataset, return_state=True).result()
        if skip_train:
            return None
        finished = persist_in(data, finetune)(
            data_dir=data_dir,
            adapter_dir=adapter_dir,
            profile=profile,
            gate=gate,
            push_dataset=push_dataset,
            release=release,
            max_download_mb=max_download_mb,
            smoke=smoke,
            benchmark=benchmark,
            benchmark_teacher=teacher_of(labeler or default_labeler(profile)),
            return_state=True,
        )
        return forward_state(finished)  # the pipeline ends as finetune did: Published, or Kept local and why
