"""Labeling spread over shards, one container each, all sharing the label store in the data dir.

Each shard labels its images into a store of its own, seeded from the data dir's, so a shard never
pays for a label another run already bought. Merging folds every shard's new rows back into the
data dir's store: an image is in exactly one shard, so no answer is lost or counted twice, and the
day's request counts grow by what each shard sent. The run's limits are split over the shards:
each gets its share of the requests per minute, of the day's remaining budget and of the cost cap.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path

from motioncoach.config import LabelConfig
from motioncoach.labels.outcomes import LabelOutcome, LabelReport
from motioncoach.records import PoseSample
from motioncoach.teachers.keys import LABELER_TEACHERS
from motioncoach.teachers.store import LabelStore
from motioncoach.teachers.store_schema import ANSWER_COLUMNS, BATCH_COLUMNS, LABEL_COLUMNS

SHARDS_DIR = "label-shards"
MIN_IMAGES_PER_SHARD = 8  # fewer would spend more on container starts than they save
_USAGE_SUMS = ("requests", "from_store", "input_tokens", "output_tokens", "cost_usd")


def shard_count(config: LabelConfig, images: int) -> int:
    """How many containers label at once: the setting, fewer for few images, one for a Batch API run."""
    if config.batch or config.labeler == "rules":
        return 1
    shards = min(config.containers, max(1, math.ceil(images / MIN_IMAGES_PER_SHARD)))
    return max(1, min(shards, config.rpm or shards))  # every shard needs at least one request a minute


def shard_samples(samples: Sequence[PoseSample], shards: int) -> list[list[PoseSample]]:
    """Up to `shards` non-empty lists, round-robin over distinct images: each image in exactly one."""
    distinct = list({s.sha256: s for s in sorted(samples, key=lambda s: s.sha256)}.values())
    out: list[list[PoseSample]] = [[] for _ in range(max(1, min(shards, len(distinct))))]
    for index, sample in enumerate(distinct):
        out[index % len(out)].append(sample)
    return [shard for shard in out if shard]


def shard_dir(data_dir: Path, samples: Sequence[PoseSample], config: LabelConfig) -> Path:
    """The shard's own store directory, named by its images and settings, so a retried shard finds it."""
    key = "\n".join(sorted(s.sha256 for s in samples)) + config.model_dump_json()
    return Path(data_dir) / SHARDS_DIR / hashlib.sha256(key.encode()).hexdigest()[:16]


def seed_shard_store(home: Path, working: Path) -> None:
    """Start a shard's working store as a copy of the data dir's, remembering the day's counts it started from.

    A working store that exists already (a retried shard, not merged yet) knows more and is kept.
    """
    if working.exists():
        return
    working.parent.mkdir(parents=True, exist_ok=True)
    if home.exists():
        shutil.copyfile(home, working)  # the data dir's store is a complete snapshot, never mid-write
    LabelStore(working).close()  # the current tables, also for a data dir without a store yet
    with sqlite3.connect(working) as db:
        db.execute("CREATE TABLE IF NOT EXISTS shard_baseline AS SELECT * FROM daily_requests")
        db.execute("CREATE TABLE IF NOT EXISTS shard_identity (id TEXT NOT NULL)")
        db.execute("INSERT INTO shard_identity (id) VALUES (?)", (uuid.uuid4().hex,))


def shard_config(config: LabelConfig, shards: int, requests_today: int) -> LabelConfig:
    """One shard's limits: its share of the requests per minute, of what is left of the day's budget, and of
    the cost cap. requests_today: what the data dir's store counted today (the most of its teachers)."""
    update: dict = {}
    if config.rpm is not None:
        update["rpm"] = max(1, config.rpm // shards)
    if config.daily_budget is not None:
        update["daily_budget"] = requests_today + max(0, config.daily_budget - requests_today) // shards
    if config.max_cost is not None:
        update["max_cost"] = config.max_cost / shards
    return config.model_copy(update=update)  # not re-validated: a share may be 0


def requests_today(store_path: Path, config: LabelConfig) -> int:
    if not Path(store_path).exists():
        return 0
    store = LabelStore(store_path)
    try:
        return max((store.requests_today(t) for t in LABELER_TEACHERS[config.labeler]), default=0)
    finally:
        store.close()


def merge_label_stores(home: Path, shards: Sequence[Path]) -> None:
    """Fold each shard's newer rows and extra requests into the data dir's store.

    Merging a shard again (a retried merge whose first try committed the store but not the shards' removal)
    changes nothing: the store remembers how many of each shard's requests it has counted already.
    """
    LabelStore(home).close()  # the current tables and columns
    labels, batches, answers = ", ".join(LABEL_COLUMNS), ", ".join(BATCH_COLUMNS), ", ".join(ANSWER_COLUMNS)
    db = sqlite3.connect(home, isolation_level=None)
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS merged_shard_requests (shard TEXT NOT NULL, day TEXT NOT NULL, "
            "teacher TEXT NOT NULL, requests INTEGER NOT NULL, PRIMARY KEY (shard, day, teacher))"
        )
        for shard in shards:
            db.execute("ATTACH DATABASE ? AS shard", (str(shard),))
            try:
                identity = _shard_identity(db, shard)
                db.execute("BEGIN")
                db.execute(
                    f"INSERT OR REPLACE INTO labels ({labels}) SELECT {labels} FROM shard.labels AS s WHERE NOT EXISTS "
                    "(SELECT 1 FROM labels AS m WHERE m.id = s.id AND m.updated_at >= s.updated_at)"
                )
                # Every answer the shard was paid for, once (its seed's answers are the store's own already).
                db.execute(
                    f"INSERT INTO answers ({answers}) SELECT {answers} FROM shard.answers AS s WHERE NOT EXISTS "
                    "(SELECT 1 FROM answers AS m WHERE m.request_key = s.request_key AND m.received_at = s.received_at "
                    "AND m.text = s.text)"
                )
                # What the shard sent beyond its seed, less what an earlier merge of this shard counted.
                db.execute(
                    "CREATE TEMP TABLE sent AS SELECT s.day AS day, s.teacher AS teacher, "
                    "s.requests - COALESCE(b.requests, 0) AS requests FROM shard.daily_requests AS s "
                    "LEFT JOIN shard.shard_baseline AS b ON b.day = s.day AND b.teacher = s.teacher "
                    "WHERE s.requests > COALESCE(b.requests, 0)"
                )
                db.execute(
                    "INSERT INTO daily_requests (day, teacher, requests) "
                    "SELECT n.day, n.teacher, n.requests - COALESCE(m.requests, 0) FROM temp.sent AS n "
                    "LEFT JOIN merged_shard_requests AS m ON m.shard = ? AND m.day = n.day AND m.teacher = n.teacher "
                    "WHERE n.requests > COALESCE(m.requests, 0) AND true "
                    "ON CONFLICT (day, teacher) DO UPDATE SET requests = requests + excluded.requests",
                    (identity,),
                )
                db.execute(
                    "INSERT OR REPLACE INTO merged_shard_requests (shard, day, teacher, requests) "
                    "SELECT ?, day, teacher, requests FROM temp.sent",
                    (identity,),
                )
                db.execute("DROP TABLE temp.sent")
                # A job the shard created replaces the record of its creation; what was recorded of it follows.
                db.execute(
                    "DELETE FROM batches WHERE state = 'creating' AND job_name NOT IN "
                    "(SELECT job_name FROM shard.batches) AND display_name IN (SELECT display_name FROM shard.batches)"
                )
                db.execute(f"INSERT OR IGNORE INTO batches ({batches}) SELECT {batches} FROM shard.batches")
                db.execute(
                    "UPDATE batches SET (state, recorded, billed_cost_usd) = (SELECT s.state, s.recorded, "
                    "s.billed_cost_usd FROM shard.batches AS s WHERE s.job_name = batches.job_name) "
                    "WHERE job_name IN (SELECT job_name FROM shard.batches)"
                )
                db.execute("COMMIT")
            finally:
                db.execute("DETACH DATABASE shard")
    finally:
        db.close()


def _shard_identity(db: sqlite3.Connection, shard: Path) -> str:
    """The id the shard's store was seeded with (a store seeded before ids were given: its folder's name)."""
    has_identity = db.execute(
        "SELECT 1 FROM shard.sqlite_master WHERE type = 'table' AND name = 'shard_identity'"
    ).fetchone()
    row = db.execute("SELECT id FROM shard.shard_identity LIMIT 1").fetchone() if has_identity else None
    return row[0] if row else Path(shard).parent.name


def merge_label_reports(samples: Sequence[PoseSample], reports: Sequence[LabelReport]) -> LabelReport:
    """One report in the order of `samples`, as a single label_with_teachers call would give."""
    by_sha: dict[str, LabelOutcome] = {o.sample.sha256: o for report in reports for o in report.outcomes}
    outcomes = [by_sha[s.sha256].model_copy(update={"sample": s}) for s in samples if s.sha256 in by_sha]
    usage: dict[tuple[str, str], dict] = {}
    for report in reports:
        for row in report.usage:
            key = (row["teacher"], row["model_id"])
            if key not in usage:
                usage[key] = dict(row) | {"stop_reason": None, "stop_reasons": []}
            else:
                for name in _USAGE_SUMS:
                    usage[key][name] += row.get(name, 0)
                usage[key]["priced"] = usage[key].get("priced", True) and row.get("priced", True)
            if row.get("stop_reason") and row["stop_reason"] not in usage[key]["stop_reasons"]:
                usage[key]["stop_reasons"].append(row["stop_reason"])
    rows = []
    for row in usage.values():
        reasons = row.pop("stop_reasons")
        row["stop_reason"] = "; ".join(reasons) or None
        row["cost_usd"] = round(row["cost_usd"], 6)
        rows.append(row)
    return LabelReport(outcomes=outcomes, usage=rows)
