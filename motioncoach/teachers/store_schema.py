"""The label store's tables, and the migration of a store an earlier version wrote.

A store is migrated in place when it is opened: the columns added since are added, and every label
it holds stays. A row of an older store that holds an answer (a label, an invalid answer, a refusal)
counts as one ask; one without (a request that gave up on 5xx) as none.
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    teacher TEXT NOT NULL,
    model_id TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    label_json TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    asks INTEGER NOT NULL DEFAULT 0,
    request TEXT NOT NULL DEFAULT '',
    checks TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS labels_by_image ON labels (sha256, teacher);
CREATE TABLE IF NOT EXISTS daily_requests (
    day TEXT NOT NULL,
    teacher TEXT NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (day, teacher)
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_key TEXT NOT NULL,
    teacher TEXT NOT NULL,
    model_id TEXT NOT NULL,
    text TEXT NOT NULL,
    unusable TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_by_request ON answers (request_key);
CREATE TABLE IF NOT EXISTS batches (
    job_name TEXT PRIMARY KEY,
    teacher TEXT NOT NULL,
    model_id TEXT NOT NULL,
    params TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    images TEXT NOT NULL,
    state TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    display_name TEXT,
    samples TEXT,
    recorded TEXT NOT NULL DEFAULT '[]',
    estimated_cost_usd REAL,
    billed_cost_usd REAL,
    estimated_tokens INTEGER,
    input_file TEXT,
    misses INTEGER NOT NULL DEFAULT 0,
    requests TEXT
);
"""
# Columns added since the first version, with their definitions: added to an older store on opening.
_ADDED_COLUMNS = {
    "labels": {
        "asks": "INTEGER NOT NULL DEFAULT 0", "request": "TEXT NOT NULL DEFAULT ''",
        "checks": "TEXT NOT NULL DEFAULT ''",
    },
    "batches": {
        "display_name": "TEXT", "samples": "TEXT", "recorded": "TEXT NOT NULL DEFAULT '[]'",
        "estimated_cost_usd": "REAL", "billed_cost_usd": "REAL", "estimated_tokens": "INTEGER",
        "input_file": "TEXT", "misses": "INTEGER NOT NULL DEFAULT 0", "requests": "TEXT",
    },
}  # fmt: skip
# A row of an older store that holds an answer (a label, an invalid answer, a refusal) counts as one ask.
_BACKFILL_ASKS = (
    "UPDATE labels SET asks = 1 WHERE asks = 0 AND (status = 'labeled' OR reason LIKE 'invalid answer%' "
    "OR reason LIKE 'blocked by%' OR reason LIKE 'rejected by%')"
)
LABEL_COLUMNS = (
    "id", "sha256", "teacher", "model_id", "prompt_version", "schema_version", "params", "status", "label_json",
    "reason", "attempts", "input_tokens", "output_tokens", "cost_usd", "updated_at", "asks", "request", "checks",
)  # fmt: skip
ANSWER_COLUMNS = (
    "request_key", "teacher", "model_id", "text", "unusable", "input_tokens", "cached_tokens", "output_tokens",
    "cost_usd", "received_at",
)  # fmt: skip
BATCH_COLUMNS = (
    "job_name", "teacher", "model_id", "params", "prompt_version", "schema_version", "images", "state",
    "submitted_at", "display_name", "samples", "recorded", "estimated_cost_usd", "billed_cost_usd",
    "estimated_tokens", "input_file", "misses", "requests",
)  # fmt: skip


def create_or_migrate(db: sqlite3.Connection) -> None:
    """Create the tables of a new store, or add what an older one lacks, in one transaction."""
    db.executescript(SCHEMA)
    db.execute("BEGIN IMMEDIATE")  # one process migrates; the others then find nothing to add
    try:
        for table, columns in _ADDED_COLUMNS.items():
            present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            for name, definition in columns.items():
                if name not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
                    if (table, name) == ("labels", "asks"):
                        db.execute(_BACKFILL_ASKS)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
