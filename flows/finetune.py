"""finetune: LoRA-train on the split dataset, measure the adapter against its base, ship it if it is better."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import State

from flows.parameters import MaxDownloadMb, train_run_name
from motioncoach.config import Profile
from motioncoach.lock import data_dir_lock
from motioncoach.publish import ReleaseSettings, with_release_flags
from motioncoach.runtime import apply_local_defaults, resolve_dir
from tasks.evaluate import evaluate_adapter, release_gate
from tasks.hub import hub_preflight, release_state, upload_adapter, upload_dataset, write_release
from tasks.publish import place_adapter
from tasks.storage import persist_in
from tasks.training import cancel_training_on_modal, find_split, train_adapter


@flow(
    name="finetune",
    description="Train a LoRA adapter on the dataset in data_dir, evaluate it against its base model and the rules, "
    "place it in adapter_dir with its card, and upload it when it is better.",
    on_cancellation=[cancel_training_on_modal],
    on_crashed=[cancel_training_on_modal],
    flow_run_name=train_run_name,
)
def finetune(
    data_dir: Path = Path("./data"),
    adapter_dir: Path = Path("./lora-adapter"),
    profile: Profile = Profile.local,
    gate: bool = True,
    push_dataset: bool = False,
    release: ReleaseSettings | None = None,
    max_download_mb: MaxDownloadMb = 2000,
    smoke: bool = False,
) -> State:
    """Train a LoRA adapter on the split in data_dir, evaluate it, place it with its card, upload it when it is better.

    Args:
        data_dir: Where images, caches, labels and the dataset live, on the worker's machine.
        adapter_dir: Where the trained LoRA adapter and its card are placed.
        profile: Where heavy steps run: local (the worker) or modal (Modal functions on the volume).
        gate: Upload the adapter only if it beats its base model on validation.
        push_dataset: Also upload the dataset (splits, images, card) to HF_DATASET_REPO_ID.
        release: The gate's rules (metrics, margin, minimum rows) and how uploads are made.
        max_download_mb: On Modal: download the adapter when it is at most this many MB (0 or more); a larger one
            stays on the volume.
        smoke: On Modal: a cheap real run on a small model and one GPU, to prove the account first.
    """
    apply_local_defaults()
    release = with_release_flags(release, gate=gate, push_dataset=push_dataset)
    hub_preflight(release, profile, data_dir)
    data = resolve_dir(data_dir)
    with data_dir_lock(data, f"finetune run {flow_run.name!r}"):
        splits = find_split(data)
        trained = persist_in(data, train_adapter)(splits, profile, data, smoke)
        placed = place_adapter(trained, Path(adapter_dir).expanduser().resolve(), profile, max_download_mb)
        report = persist_in(data, evaluate_adapter)(trained, splits, profile, data)
        decision = release_gate(report, release.gate)
        lineage = write_release(trained, splits, report, decision, release, placed, data)
        if release.push_dataset:
            lineage = upload_dataset(lineage, splits, release, placed, data)
        return release_state(upload_adapter(lineage, release, placed), placed)
