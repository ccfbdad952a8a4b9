"""Write a coaching label for every kept pose."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from motioncoach.config import LabelConfig
from motioncoach.labels.outcomes import LabelReport, label_samples
from motioncoach.labels.select import labeler_for
from motioncoach.labels.store import write_label_log
from motioncoach.records import PoseSample
from tasks import reporting
from tasks.storage import LABELS

SAMPLE_ROWS = 20


@task(name="label-poses", cache_policy=LABELS)
def label_images(samples: list[PoseSample], config: LabelConfig, data_dir: Path) -> LabelReport:
    """Label each kept pose with the configured labeler; failures are recorded with their reason."""
    report = label_samples(samples, labeler_for(config), progress=reporting.progress("labeling", "Labeling"))
    log_path = write_label_log(report, Path(data_dir))
    get_run_logger().info("%d labeled, %d failed (%s)", len(report.labeled), len(report.failed), log_path)
    reporting.table(
        "sample-labels",
        [
            {
                "image": o.sample.source_path.name,
                "activity": o.sample.activity,
                "score": o.label.progress_score,
                "coaching": " | ".join(p.coaching_script for p in o.label.feedback_points),
            }
            for o in report.labeled[:SAMPLE_ROWS]
            if o.label
        ],
        f"The first {SAMPLE_ROWS} labels written by {config.labeler}",
    )
    if report.failed:
        reporting.table(
            "label-failures",
            [{"image": str(o.sample.source_path), "reason": o.reason} for o in report.failed],
            "Images that could not be labeled, with the reason",
        )
    return report
