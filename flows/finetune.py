"""finetune: LoRA-train on the split dataset, measure the adapter against its base, ship it if it is better."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from motioncoach.config import Profile
from motioncoach.lock import data_dir_lock
from motioncoach.publish import ReleaseConfig, with_release_flags
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
)
def finetune(
    data_dir: Path = Path("./data"),
    adapter_dir: Path = Path("./lora-adapter"),
    profile: Profile = Profile.local,
    gate: bool = True,
    push_dataset: bool = False,
    release: ReleaseConfig | None = None,
    max_download_mb: int = 2000,
    smoke: bool = False,
) -> Path:
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
