"""The pose filter spread over shards: split the images, run filter_poses per shard, merge the results.

A shard holds whole groups of identical images, so every image content is judged in exactly one
shard, and the merged cache and report are the ones a single filter_poses call would produce.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from motioncoach.config import PoseFilterConfig
from motioncoach.pose.cache import PoseCache
from motioncoach.pose.filter import PoseFilterReport
from motioncoach.records import ImageRecord

SHARDS_DIR = "pose-shards"


def shard_records(records: Sequence[ImageRecord], shards: int) -> list[list[ImageRecord]]:
    """Up to `shards` non-empty lists of records, round-robin over content groups, same content together."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    groups: dict[str, list[ImageRecord]] = {}
    for record in sorted(records, key=lambda r: str(r.path)):
        groups.setdefault(record.sha256, []).append(record)
    out: list[list[ImageRecord]] = [[] for _ in range(min(shards, len(groups)))]
    for index, group in enumerate(groups.values()):
        out[index % len(out)].extend(group)
    return out


def shard_cache_path(data_dir: Path, records: Sequence[ImageRecord], config: PoseFilterConfig) -> Path:
    """The shard's own cache file, named by its images and settings, so a rerun of a shard finds it."""
    key = "\n".join(sorted(f"{r.sha256} {r.path}" for r in records)) + config.fingerprint()
    return Path(data_dir) / SHARDS_DIR / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def seed_shard_cache(main_cache: Path, shard_cache: Path, records: Sequence[ImageRecord]) -> None:
    """Start a new shard cache with what the main cache knows about the shard's images."""
    if shard_cache.exists():  # a shard that ran before and was not merged yet: it knows more
        return
    wanted = {r.sha256 for r in records}
    seeded = PoseCache(shard_cache)
    for key, entry in PoseCache.load(main_cache).entries.items():
        if entry.sha256 in wanted:
            seeded.record(_fingerprint(key), entry)
    seeded.save()


def merge_pose_caches(target: Path, sources: Sequence[Path]) -> int:
    """Fold shard caches into the main cache (paths of known images are added); returns its entry count."""
    cache = PoseCache.load(target)
    for source in sources:
        for key, entry in PoseCache.load(Path(source)).entries.items():
            known = cache.entries.get(key)
            if known is None:
                cache.record(_fingerprint(key), entry)
            elif any([known.add_path(path) for path in entry.paths()]):  # a list: add every new path
                cache.record(_fingerprint(key), known)
    cache.save()
    return len(cache.entries)


def merge_reports(reports: Sequence[PoseFilterReport]) -> PoseFilterReport:
    """One report from the shards' reports, ordered as filter_poses orders its own."""
    return PoseFilterReport(
        kept=sorted((s for r in reports for s in r.kept), key=lambda s: str(s.source_path)),
        rejected=sorted((x for r in reports for x in r.rejected), key=lambda x: str(x.source_path)),
        newly_processed=sum(r.newly_processed for r in reports),
        from_cache=sum(r.from_cache for r in reports),
    )


def _fingerprint(key: str) -> str:
    """The settings part of a cache key `<sha256>:<fingerprint>`."""
    return key.split(":", 1)[1]
