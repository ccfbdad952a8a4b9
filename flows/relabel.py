"""relabel: the nightly job that fixes labels, then rebuilds the dataset and its split."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from flows.parameters import DailyBudget
from motioncoach.config import LabelerName, Profile, SplitConfig, TeacherSettings, with_labeler
from motioncoach.dataset import SplitSummary
from motioncoach.runtime import apply_local_defaults, resolve_dir
from tasks.dataset import split, write_dataset
from tasks.labels import preflight
from tasks.locks import cancel_paid_calls, hold_data_dir
from tasks.relabel import labels_from_store, relabel_on_modal, relabel_problems
from tasks.storage import persist_in


@flow(
    name="relabel",
    description="Relabel stale, invalid, failed and disputed labels (newest first, within a daily request "
    "budget), then rebuild the dataset and split.",
    flow_run_name="relabel-{labeler}",
    on_cancellation=[cancel_paid_calls],
    on_crashed=[cancel_paid_calls],
)
def relabel(
    data_dir: Path = Path("./data"),
    labeler: LabelerName = "gemini",
    daily_budget: DailyBudget = 1000,
    batch: bool = False,
    labeling: TeacherSettings | None = None,
    profile: Profile = Profile.local,
) -> SplitSummary:
    """Relabel stale, invalid, failed and disputed labels, then rebuild the dataset and split.

    Args:
        data_dir: Where images, caches, labels and the dataset live, on the worker's machine.
        labeler: The teacher to relabel with: gemini, openrouter or consensus.
        daily_budget: Teacher requests per UTC day (at least 1); empty for no limit.
        batch: Gemini's Batch API: half price, answers collected on a later run.
        labeling: Teacher settings: models, concurrency, containers, rate, retries, prices.
        profile: Where heavy steps run: local (the worker) or modal (Modal functions on the volume).
    """
    apply_local_defaults()
    config = with_labeler(labeling, labeler, daily_budget=daily_budget, batch=batch)
    preflight(config, profile, data_dir)
    data = resolve_dir(data_dir)
    with hold_data_dir(data, f"relabel run {flow_run.name!r}", profile):
        if profile == Profile.modal:  # the images, the store and the dataset live on the volume
            return relabel_on_modal(config, data)
        samples = relabel_problems(config, data)
        labels = labels_from_store(samples, config, data)
        dataset = persist_in(data, write_dataset)(labels, data)
        return persist_in(data, split)(dataset, SplitConfig(), data)
