"""finetune: LoRA-train on the split dataset, then place the adapter."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from motioncoach.config import Profile
from motioncoach.lock import data_dir_lock
from motioncoach.runtime import apply_local_defaults, resolve_dir
from tasks.publish import place_adapter
from tasks.storage import persist_in
from tasks.training import find_split, train_adapter


@flow(name="finetune", description="Train a LoRA adapter on the dataset in data_dir and place it in adapter_dir.")
def finetune(
    data_dir: Path = Path("./data"),
    adapter_dir: Path = Path("./lora-adapter"),
    profile: Profile = Profile.local,
) -> Path:
    apply_local_defaults()
    data = resolve_dir(data_dir)
    with data_dir_lock(data, f"finetune run {flow_run.name!r}"):
        splits = find_split(data)
        trained = persist_in(data, train_adapter)(splits, profile, data)
        return place_adapter(trained, Path(adapter_dir).expanduser().resolve())
