"""labels.jsonl: every labeling outcome of the last run, for people and later steps to read."""

from __future__ import annotations

from pathlib import Path

from motioncoach.dataset.rows import write_jsonl
from motioncoach.labels.outcomes import LabelReport

LABELS_FILE = "labels.jsonl"


def write_label_log(report: LabelReport, data_dir: Path) -> Path:
    path = Path(data_dir) / LABELS_FILE
    write_jsonl(
        (
            {
                "sha256": o.sample.sha256,
                "source_path": str(o.sample.source_path),
                "activity": o.sample.activity,
                "labeler": o.labeler,
                "model_id": o.model_id,
                "status": o.status,
                "label": o.label.model_dump(mode="json") if o.label else None,
                "reason": o.reason,
            }
            for o in report.outcomes
        ),
        path,
    )
    return path
