"""Keep the images that show exactly one well-detected person."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from prefect import get_run_logger, task

from motioncoach.config import PoseFilterConfig, Profile
from motioncoach.pose import PoseFilterReport, filter_poses
from motioncoach.records import ImageRecord
from tasks import reporting
from tasks.storage import keyed

YOLO_CACHE_FILE = "yolo_cache.json"


@task(name="filter-poses", cache_policy=keyed("pose"))
def filter_images(
    records: list[ImageRecord], config: PoseFilterConfig, data_dir: Path, profile: Profile = Profile.local
) -> PoseFilterReport:
    """Run YOLO pose on every image not already in the YOLO cache; keep single-person poses."""
    cache_path = Path(data_dir) / YOLO_CACHE_FILE
    progress = reporting.progress("pose-filter", "YOLO pose")
    if profile == Profile.modal:  # one GPU per shard; the merged cache comes back into cache_path
        from remote import client as modal_client
        from remote import steps as modal_steps

        report = modal_steps.filter_poses(modal_client.connect(data_dir), records, config, cache_path, progress)
    else:
        report = filter_poses(records, config, cache_path, progress=progress)
    get_run_logger().info(
        "kept %d of %d images (%d run through YOLO, %d from the cache)",
        len(report.kept),
        len(records),
        report.newly_processed,
        report.from_cache,
    )
    progress.finish()
    _publish(report, cache_path, Path(data_dir))
    return report


def _publish(report: PoseFilterReport, cache_path: Path, data_dir: Path) -> None:
    counts = report.counts_by_activity()
    reporting.table(
        "pose-filter-by-activity",
        [{"activity": a, **c} for a, c in sorted(counts.items())],
        "Images kept and rejected by the pose filter, per activity",
    )
    shown = [(s.source_path, s.activity, "kept", "") for s in report.kept] + [
        (r.source_path, r.activity, "rejected", r.reason) for r in report.rejected
    ]
    outcomes = [
        {"image": reporting.shown_path(path, data_dir), "activity": activity, "outcome": outcome, "reason": reason}
        for path, activity, outcome, reason in shown
    ]
    where = f"{YOLO_CACHE_FILE} in the data dir"
    reporting.capped_table("pose-filter-outcomes", outcomes, "Every image's pose-filter outcome", where=where)
    reporting.capped_table(
        "yolo-cache",
        yolo_cache_summary(cache_path),
        "The YOLO cache: entries by activity, outcome and reason (each image is run through YOLO once)",
        where=where,
    )


def yolo_cache_summary(cache_path: Path) -> list[dict]:
    """Entries of the YOLO cache counted by activity, outcome and reason: a table of any cache's size."""
    entries = json.loads(cache_path.read_text())["entries"] if cache_path.exists() else {}
    counts = Counter((e.get("activity") or "", e.get("outcome") or "", e.get("reason") or "") for e in entries.values())
    return [
        {"activity": activity, "outcome": outcome, "reason": reason, "images": n}
        for (activity, outcome, reason), n in sorted(counts.items())
    ]
