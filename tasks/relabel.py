"""Ask the teachers again for the labels that need it, then rebuild from the store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from motioncoach.config import LabelConfig
from motioncoach.dataset import DATASET_FILE, read_jsonl
from motioncoach.labels.outcomes import LabelReport
from motioncoach.labels.store import write_label_log
from motioncoach.records import PoseSample
from motioncoach.teachers.labeling import label_with_teachers
from motioncoach.teachers.relabel import find_candidates, keep_stale_labels, kept_samples, within_budget
from motioncoach.teachers.store import LabelStore
from tasks import reporting

YOLO_CACHE_FILE = "yolo_cache.json"


@task(name="relabel-problems", cache_policy=NO_CACHE)
def relabel_problems(config: LabelConfig, data_dir: Path) -> list[PoseSample]:
    """Relabel stale, invalid, failed and disputed labels, newest first, within the daily budget."""
    logger = get_run_logger()
    samples = kept_samples(Path(data_dir) / YOLO_CACHE_FILE)
    store = LabelStore.in_data_dir(data_dir)
    try:
        candidates = find_candidates(samples, config, store, Path(data_dir))
    finally:
        store.close()
    chosen = within_budget(candidates, config)
    logger.info(
        "%d of %d kept images need relabeling; %d fit today's budget", len(candidates), len(samples), len(chosen)
    )
    refresh = frozenset(c.sample.sha256 for c in chosen if c.problem == "disagreement")
    outcome = {}
    if chosen:
        report = label_with_teachers(
            [c.sample for c in chosen],
            config,
            Path(data_dir),
            reporting.progress("relabel", "Relabeling"),
            refresh=refresh,
        )
        outcome = {o.sample.sha256: o for o in report.outcomes}
    rows = [
        {
            "image": str(c.sample.source_path),
            "problem": c.problem,
            "since": c.since,
            "now": outcome[c.sample.sha256].status if c.sample.sha256 in outcome else "left for a later night",
            "detail": (c.detail or "")[:200],
        }
        for c in candidates
    ]
    reporting.table("relabel-changes", rows, "What the relabel found and what became of it, newest problem first")
    counts = Counter(c.problem for c in candidates)
    fixed = Counter(
        c.problem for c in chosen if outcome.get(c.sample.sha256) and outcome[c.sample.sha256].status == "labeled"
    )
    summary = "\n".join(f"| {p} | {counts[p]} | {fixed[p]} |" for p in sorted(counts)) or "| (none) | 0 | 0 |"
    reporting.markdown(
        "relabel-summary",
        f"## Relabel with {config.labeler}\n\n| problem | found | now labeled |\n|---|---|---|\n{summary}\n",
        "Counts of what the nightly relabel changed",
    )
    return samples


@task(name="labels-from-store", cache_policy=NO_CACHE)
def labels_from_store(samples: list[PoseSample], config: LabelConfig, data_dir: Path) -> LabelReport:
    """The current label of every kept image, read from the store without sending anything."""
    report = label_with_teachers(samples, config, Path(data_dir), send=False)
    store = LabelStore.in_data_dir(data_dir)
    try:
        report = keep_stale_labels(report, store)
    finally:
        store.close()
    write_label_log(report, Path(data_dir))
    before = len(read_jsonl(Path(data_dir) / DATASET_FILE)) if (Path(data_dir) / DATASET_FILE).exists() else 0
    get_run_logger().info("dataset rows: %d before, %d labeled now", before, len(report.labeled))
    return report
