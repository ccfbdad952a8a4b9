"""Ask the teachers again for the labels that need it, then rebuild from the store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from motioncoach.audit import AUDIT_FILE
from motioncoach.config import LabelConfig
from motioncoach.dataset import DATASET_FILE, SplitSummary, read_jsonl
from motioncoach.labels.outcomes import LabelReport
from motioncoach.labels.store import write_label_log
from motioncoach.records import PoseSample
from motioncoach.teachers.relabel import RelabelResult, current_labels, relabel_data_dir
from tasks import reporting

ASKED_ENOUGH = "not asked again: labeling.max_asks_per_image reached"


@task(name="relabel-problems", cache_policy=NO_CACHE)
def relabel_problems(config: LabelConfig, data_dir: Path) -> list[PoseSample]:
    """Relabel stale, invalid, failed and disputed labels, newest first, within the daily budget."""
    progress = reporting.progress("relabel", "Relabeling")
    result = relabel_data_dir(config, Path(data_dir), progress=progress)
    progress.finish()
    report_relabel(result, config, Path(data_dir))
    return result.samples


def report_relabel(result: RelabelResult, config: LabelConfig, data_dir: Path) -> None:
    """The relabel-changes table and the relabel-summary counts, and a log line."""
    get_run_logger().info(
        "%d of %d kept images need relabeling; %d fit today's budget",
        len(result.candidates),
        len(result.samples),
        len(result.chosen),
    )
    rows = [
        {
            "image": reporting.shown_path(c.sample.source_path, data_dir),
            "problem": c.problem,
            "since": c.since,
            "now": result.statuses.get(
                c.sample.sha256, "left for a later night" if c.asks_left(config) else ASKED_ENOUGH
            ),
            "asks": c.asks,
            "detail": (c.detail or "")[:200],
        }
        for c in result.candidates
    ]
    reporting.capped_table(
        "relabel-changes",
        rows,
        "What the relabel found and what became of it, newest problem first",
        where="labels.jsonl in the data dir",
    )
    counts = Counter(c.problem for c in result.candidates)
    fixed = Counter(c.problem for c in result.chosen if result.statuses.get(c.sample.sha256) == "labeled")
    summary = "\n".join(f"| {p} | {counts[p]} | {fixed[p]} |" for p in sorted(counts)) or "| (none) | 0 | 0 |"
    reporting.markdown(
        "relabel-summary",
        f"## Relabel with {config.labeler}\n\n| problem | found | now labeled |\n|---|---|---|\n{summary}\n",
        "Counts of what the nightly relabel changed",
    )


@task(name="labels-from-store", cache_policy=NO_CACHE)
def labels_from_store(samples: list[PoseSample], config: LabelConfig, data_dir: Path) -> LabelReport:
    """The current label of every kept image, read from the store without sending anything."""
    report = current_labels(samples, config, Path(data_dir))
    write_label_log(report, Path(data_dir))
    before = len(read_jsonl(Path(data_dir) / DATASET_FILE)) if (Path(data_dir) / DATASET_FILE).exists() else 0
    get_run_logger().info("dataset rows: %d before, %d labeled now", before, len(report.labeled))
    return report


@task(name="relabel-on-modal", cache_policy=NO_CACHE)
def relabel_on_modal(config: LabelConfig, data_dir: Path) -> SplitSummary:
    """The relabel, dataset and split on the volume, where the images and the store are; copies come home."""
    from remote import client as modal_client
    from remote import steps as modal_steps

    remote = modal_client.connect(data_dir)
    if (Path(data_dir) / AUDIT_FILE).is_file():  # the verdicts the relabel honours, on the volume with the store
        modal_steps.put_audit_book(remote, Path(data_dir))
    result, summary = modal_steps.relabel(remote, config, Path(data_dir))
    report_relabel(result, config, Path(data_dir))
    get_run_logger().info(
        "relabeled on Modal: %d train and %d validation rows in %s/ on the volume and in %s",
        summary.train.rows,
        summary.val.rows,
        remote.name,
        data_dir,
    )
    return summary
