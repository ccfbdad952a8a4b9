"""relabel: the nightly job that fixes labels, then rebuilds the dataset and its split."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from motioncoach.config import LabelConfig, LabelerName, Profile, SplitConfig, with_labeler
from motioncoach.dataset import SplitSummary
from motioncoach.lock import data_dir_lock
from motioncoach.runtime import apply_local_defaults, resolve_dir
from tasks.dataset import split, write_dataset
from tasks.labels import preflight
from tasks.relabel import labels_from_store, relabel_on_modal, relabel_problems
from tasks.storage import persist_in


@flow(
    name="relabel",
    description="Relabel stale, invalid, failed and disputed labels (newest first, within a daily request "
    "budget), then rebuild the dataset and split.",
)
def relabel(
    data_dir: Path = Path("./data"),
    labeler: LabelerName = "gemini",
    daily_budget: int | None = 1000,
    batch: bool = False,
    labeling: LabelConfig | None = None,
    profile: Profile = Profile.local,
) -> SplitSummary:
    apply_local_defaults()
    config = with_labeler(labeling, labeler).model_copy(update={"daily_budget": daily_budget, "batch": batch})
    preflight(config, profile)
    data = resolve_dir(data_dir)
    with data_dir_lock(data, f"relabel run {flow_run.name!r}"):
        if profile == Profile.modal:  # the images, the store and the dataset live on the volume
            return relabel_on_modal(config, data)
        samples = relabel_problems(config, data)
        labels = labels_from_store(samples, config, data)
        dataset = persist_in(data, write_dataset)(labels, data)
        return persist_in(data, split)(dataset, SplitConfig(), data)
