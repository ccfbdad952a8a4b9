"""The durable label store: every paid answer is on disk the moment it is validated.

SQLite in the data dir, one committed row per label, keyed by everything that shapes the answer:
the image's content, the prompt templates, the schema version, the model and its parameters. A
rerun finds its labels and sends nothing; a changed prompt or model makes new keys, so older
labels become stale, never lost.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from motioncoach.labels.schema import SCHEMA_VERSION, CoachingLabel, read_label
from motioncoach.prompts import prompt_version

STORE_FILE = "labels.sqlite"

_SCHEMA = """
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
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_by_image ON labels (sha256, teacher);
CREATE TABLE IF NOT EXISTS daily_requests (
    day TEXT NOT NULL,
    teacher TEXT NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (day, teacher)
);
CREATE TABLE IF NOT EXISTS batches (
    job_name TEXT PRIMARY KEY,
    teacher TEXT NOT NULL,
    model_id TEXT NOT NULL,
    params TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    images TEXT NOT NULL,
    state TEXT NOT NULL,
    submitted_at TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def today() -> str:
    return datetime.now(UTC).date().isoformat()


class LabelKey(BaseModel):
    """Everything that shapes a teacher's answer for one image."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    teacher: str
    model_id: str
    params: str  # canonical JSON of the generation parameters
    prompt_version: str
    schema_version: str = SCHEMA_VERSION

    @classmethod
    def current(cls, sha256: str, teacher: str, model_id: str, params: dict) -> LabelKey:
        return cls(
            sha256=sha256,
            teacher=teacher,
            model_id=model_id,
            params=json.dumps(params, sort_keys=True),
            prompt_version=prompt_version(),
        )

    @property
    def id(self) -> str:
        parts = (self.sha256, self.teacher, self.model_id, self.params, self.prompt_version, self.schema_version)
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class StoredLabel(BaseModel):
    key: LabelKey
    status: Literal["labeled", "failed"]
    label: CoachingLabel | None
    reason: str | None
    attempts: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    updated_at: str


class LabelStore:
    """One SQLite file; every write is its own committed transaction."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> LabelStore:
        return cls(Path(data_dir) / STORE_FILE)

    def close(self) -> None:
        self._db.close()

    def get(self, key: LabelKey) -> StoredLabel | None:
        row = self._db.execute(
            "SELECT status, label_json, reason, attempts, input_tokens, output_tokens, cost_usd, updated_at "
            "FROM labels WHERE id = ?",
            (key.id,),
        ).fetchone()
        if row is None:
            return None
        status, label_json, reason, attempts, tokens_in, tokens_out, cost, updated = row
        return StoredLabel(
            key=key,
            status=status,
            label=read_label(label_json) if label_json else None,
            reason=reason,
            attempts=attempts,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost,
            updated_at=updated,
        )

    def put(
        self,
        key: LabelKey,
        *,
        label: CoachingLabel | None = None,
        reason: str | None = None,
        attempts: int = 1,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        """Record a label (label set) or a failure (reason set), replacing any earlier failure."""
        status = "labeled" if label is not None else "failed"
        self._db.execute(
            "INSERT OR REPLACE INTO labels (id, sha256, teacher, model_id, prompt_version, schema_version, params, "
            "status, label_json, reason, attempts, input_tokens, output_tokens, cost_usd, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.id, key.sha256, key.teacher, key.model_id, key.prompt_version, key.schema_version, key.params,
                status, label.model_dump_json() if label else None, reason, attempts, input_tokens, output_tokens,
                cost_usd, _now(),
            ),
        )  # fmt: skip

    def digest(self, sha256s: list[str], teachers: tuple[str, ...]) -> str:
        """A hash of every row these images have from these teachers: it changes when a label lands."""
        digest = hashlib.sha256()
        for sha in sorted(set(sha256s)):
            rows = self._db.execute(
                f"SELECT id, status, updated_at FROM labels WHERE sha256 = ? AND teacher IN "
                f"({','.join('?' * len(teachers))}) ORDER BY id",
                (sha, *teachers),
            ).fetchall()
            digest.update(f"{sha}:{rows}".encode())
        return digest.hexdigest()

    def other_versions(self, sha256: str, teacher: str, current: LabelKey) -> list[tuple[str, str, str, str]]:
        """(model_id, prompt_version, status, updated_at) of this image's labels under other keys: stale ones."""
        return self._db.execute(
            "SELECT model_id, prompt_version, status, updated_at FROM labels "
            "WHERE sha256 = ? AND teacher = ? AND id != ? ORDER BY updated_at DESC",
            (sha256, teacher, current.id),
        ).fetchall()

    def newest_label(self, sha256: str, teacher: str) -> tuple[CoachingLabel, str, str] | None:
        """This image's most recent successful label under any key: (label, model_id, prompt_version)."""
        row = self._db.execute(
            "SELECT label_json, model_id, prompt_version FROM labels WHERE sha256 = ? AND teacher = ? "
            "AND status = 'labeled' ORDER BY updated_at DESC LIMIT 1",
            (sha256, teacher),
        ).fetchone()
        return (read_label(row[0]), row[1], row[2]) if row else None

    # Daily request counts, for free tiers that cap requests per day.
    def requests_today(self, teacher: str) -> int:
        row = self._db.execute(
            "SELECT requests FROM daily_requests WHERE day = ? AND teacher = ?", (today(), teacher)
        ).fetchone()
        return row[0] if row else 0

    def count_request(self, teacher: str, requests: int = 1) -> None:
        """Counted before sending, so a killed run never under-counts what it spent."""
        self._db.execute(
            "INSERT INTO daily_requests (day, teacher, requests) VALUES (?, ?, ?) "
            "ON CONFLICT (day, teacher) DO UPDATE SET requests = requests + excluded.requests",
            (today(), teacher, requests),
        )

    # Batch jobs: submitted on one run, collected on a later one.
    def add_batch(self, job_name: str, keys: list[LabelKey]) -> None:
        first = keys[0]
        self._db.execute(
            "INSERT INTO batches (job_name, teacher, model_id, params, prompt_version, schema_version, images, "
            "state, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'submitted', ?)",
            (
                job_name, first.teacher, first.model_id, first.params, first.prompt_version, first.schema_version,
                json.dumps([k.sha256 for k in keys]), _now(),
            ),
        )  # fmt: skip

    def open_batches(self, teacher: str, model_id: str) -> list[tuple[str, list[str]]]:
        rows = self._db.execute(
            "SELECT job_name, images FROM batches WHERE teacher = ? AND model_id = ? AND state = 'submitted' "
            "ORDER BY submitted_at",
            (teacher, model_id),
        ).fetchall()
        return [(name, json.loads(images)) for name, images in rows]

    def close_batch(self, job_name: str, state: str) -> None:
        self._db.execute("UPDATE batches SET state = ? WHERE job_name = ?", (state, job_name))
