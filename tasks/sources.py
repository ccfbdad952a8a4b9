"""Find the images a run will use."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from motioncoach.config import Profile, SourceConfig
from motioncoach.records import ImageRecord
from motioncoach.sources import collect_images
from tasks import reporting


@task(name="find-images", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 60])
def find_images(config: SourceConfig, data_dir: Path, profile: Profile = Profile.local) -> list[ImageRecord]:
    """Download or assemble the source, then list and hash its images (never cached: folders change)."""
    if profile == Profile.modal:
        from remote import client as modal_client
        from remote import steps as modal_steps

        records = modal_steps.find_images(modal_client.connect(data_dir), config)
    else:
        records = collect_images(config, data_dir)
    counts = Counter(r.activity for r in records)
    get_run_logger().info("%d images from %r across %d activities", len(records), config.source, len(counts))
    reporting.table(
        "sources",
        [{"activity": activity, "images": n} for activity, n in sorted(counts.items())],
        f"Images found in source {config.source!r} (max_samples={config.max_samples}, {profile.value} profile)",
    )
    return records
