"""The durable label store: every paid answer is on disk the moment it is validated.

SQLite in the data dir, one committed row per label, keyed by everything that shapes the answer:
the image's content, the prompt templates, the schema version, the model and its parameters. A
rerun finds its labels and sends nothing; a changed prompt or model makes new keys, so older
labels become stale, never lost. Each row counts the answers it took across runs (`asks`), so
an image whose answers stay unusable stops costing. Batch jobs are recorded before they are
created, with the key their requests were built under and the samples to validate them against.

The tables, and how a store of an earlier version is migrated when it is opened: store_schema.py.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from motioncoach.labels.schema import SCHEMA_VERSION, CoachingLabel, read_label
from motioncoach.records import PoseSample
from motioncoach.teachers.base import TeacherAnswer
from motioncoach.teachers.store_schema import BATCH_COLUMNS, create_or_migrate

STORE_FILE = "labels.sqlite"

OPEN_BATCH_STATES = ("creating", "submitted")
UNCHECKED = "an answer arrived and is not checked yet"  # a row's reason between an answer and its check
_INTENT = "creating:"  # the job name a job is recorded under until batches.create has named it

# Whoever keeps a copy of a store elsewhere (store_copy.py) hears of its writes, by the store's path:
# the store is opened deep inside the labeling code, which need not know it is copied.
_WRITE_LISTENERS: dict[Path, Callable[[bool], None]] = {}
_LISTENERS_LOCK = threading.Lock()


def listen_to_writes(path: Path, listener: Callable[[bool], None] | None) -> None:
    """Call listener(wait) after each committed write to the store at `path` (wait=False), and from
    LabelStore.make_durable (wait=True: return only once the writes so far are where the store lives).
    None stops listening."""
    with _LISTENERS_LOCK:
        if listener is None:
            _WRITE_LISTENERS.pop(Path(path).resolve(), None)
        else:
            _WRITE_LISTENERS[Path(path).resolve()] = listener


def notify_written(path: Path) -> None:
    """Tell whoever keeps a copy of the store at `path` that a write was committed (another connection's)."""
    listener = _WRITE_LISTENERS.get(Path(path).resolve())
    if listener is not None:
        listener(False)


def _now() -> str:
    # Microseconds: merges keep the newer of two rows by this stamp, and one second holds many answers.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def today() -> str:
    return datetime.now(UTC).date().isoformat()


class LabelKey(BaseModel):
    """Everything that shapes a teacher's answer for one image: its id is the hash of what is asked.

    prompt_version is what every request of a run asks alike (the prompts, the answer schema, the image
    encoding: teachers.request.asked_version), request this image's own question (its activity and
    cues, its pose block, its size). Rows of a store written before requests were keyed have no request:
    their labels are older versions of today's, kept and used as stale labels until relabeled.
    """

    model_config = ConfigDict(frozen=True)

    sha256: str
    teacher: str
    model_id: str
    params: str  # canonical JSON of the generation parameters
    prompt_version: str
    schema_version: str = SCHEMA_VERSION
    request: str = ""

    @classmethod
    def of(cls, sample: PoseSample, teacher: str, model_id: str, params: dict) -> LabelKey:
        """The key of the request a teacher is sent for this sample today."""
        from motioncoach.teachers.request import asked_version, request_digest

        return cls(
            sha256=sample.sha256,
            teacher=teacher,
            model_id=model_id,
            params=json.dumps(params, sort_keys=True),
            prompt_version=asked_version(),
            request=request_digest(sample),
        )

    @classmethod
    def asked_alike(cls, teacher: str, model_id: str, params: dict) -> LabelKey:
        """A key that stands for every request of a run (no image): for same_request()."""
        from motioncoach.teachers.request import asked_version

        return cls(sha256="", teacher=teacher, model_id=model_id, params=json.dumps(params, sort_keys=True),
                   prompt_version=asked_version())  # fmt: skip

    @property
    def id(self) -> str:
        parts = (self.sha256, self.teacher, self.model_id, self.params, self.prompt_version, self.schema_version)
        return hashlib.sha256("\x00".join(parts + ((self.request,) if self.request else ())).encode()).hexdigest()

    def same_request(self, other: LabelKey) -> bool:
        """Whether both keys ask alike (prompts, schema, encoding, model, parameters), whatever the image."""
        return (self.teacher, self.model_id, self.params, self.prompt_version, self.schema_version) == (
            other.teacher, other.model_id, other.params, other.prompt_version, other.schema_version,
        )  # fmt: skip


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
    asks: int = Field(0, description="Answers asked for under this key, over all runs.")
    checks: str = Field("", description="The checks' version the status was decided by ('' before any).")


class StoredAnswer(BaseModel):
    """One paid answer, as it arrived."""

    answer: TeacherAnswer
    cost_usd: float
    received_at: str


class BatchJob(BaseModel):
    """A Batch API job as the store remembers it: what it was asked under, and what is recorded of it."""

    job_name: str  # "creating:<display name>" until batches.create has named it
    display_name: str | None
    teacher: str
    model_id: str
    params: str
    prompt_version: str
    schema_version: str
    images: list[str]
    state: str  # creating, submitted, collected, or the way it ended (failed, cancelled, expired)
    submitted_at: str
    samples: list[PoseSample] | None  # None for a job recorded by an older version
    recorded: list[str]
    estimated_cost_usd: float | None
    billed_cost_usd: float | None
    estimated_tokens: int | None = None
    input_file: str | None = Field(None, description="The uploaded JSONL of a large job, used by every later try.")
    misses: int = Field(0, description="Reads Gemini answered 404 to: a job gone for good is given back.")
    requests: dict[str, str] | None = Field(None, description="sha256 -> the request digest each image was asked by.")

    @property
    def created(self) -> bool:
        """Whether batches.create has named the job (else it is an intent, to be looked up by display name)."""
        return self.state != "creating"

    def key(self, sha256: str) -> LabelKey:
        """The key an image of this job was submitted under, whatever the current prompt and model are."""
        return LabelKey(
            sha256=sha256, teacher=self.teacher, model_id=self.model_id, params=self.params,
            prompt_version=self.prompt_version, schema_version=self.schema_version,
            request=(self.requests or {}).get(sha256, ""),
        )  # fmt: skip


def intent_name(display_name: str) -> str:
    return _INTENT + display_name


class LabelStore:
    """One SQLite file; every write is its own committed transaction, or part of one `transaction()`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._resolved = self.path.resolve()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process
        # Writes come from the event loop and from worker threads on one connection: a transaction
        # must not take another thread's write in with it.
        self._lock = threading.RLock()
        self._in_transaction = False
        with self._lock:
            create_or_migrate(self._db)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes inside are committed together or not at all (a crash leaves none of them)."""
        with self._lock:
            if self._in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._in_transaction = False
        self._written()

    def _write(self, sql: str, parameters: tuple = ()) -> None:
        with self._lock:
            self._db.execute(sql, parameters)
            if self._in_transaction:
                return
        self._written()

    def _written(self) -> None:
        listener = _WRITE_LISTENERS.get(self._resolved)
        if listener is not None:
            listener(False)

    def make_durable(self) -> None:
        """Return once every write so far is where the store lives (a no-op where it is not copied)."""
        listener = _WRITE_LISTENERS.get(self._resolved)
        if listener is not None:
            listener(True)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> LabelStore:
        return cls(Path(data_dir) / STORE_FILE)

    def close(self) -> None:
        self._db.close()

    def get(self, key: LabelKey) -> StoredLabel | None:
        row = self._db.execute(
            "SELECT status, label_json, reason, attempts, input_tokens, output_tokens, cost_usd, updated_at, asks, "
            "checks FROM labels WHERE id = ?",
            (key.id,),
        ).fetchone()
        return None if row is None else _stored(key, row)

    def labels_of(self, sha256: str, teacher: str | None = None) -> list[StoredLabel]:
        """Every row of this image (of one teacher, or all), under any key: oldest first."""
        rows = self._db.execute(
            "SELECT teacher, model_id, params, prompt_version, schema_version, request, status, label_json, reason, "
            "attempts, input_tokens, output_tokens, cost_usd, updated_at, asks, checks FROM labels WHERE sha256 = ? "
            "AND (? IS NULL OR teacher = ?) ORDER BY updated_at",
            (sha256, teacher, teacher),
        ).fetchall()
        keys = (
            LabelKey(sha256=sha256, teacher=t, model_id=m, params=p, prompt_version=v, schema_version=sv, request=r)
            for t, m, p, v, sv, r, *_ in rows
        )
        return [_stored(key, row[6:]) for key, row in zip(keys, rows, strict=True)]

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
        asks: int | None = None,
        checks: str = "",
    ) -> None:
        """Record a label (label set) or a failure (reason set), replacing the key's earlier row.

        asks: the answers this key has taken over all runs; None keeps the count the row had.
        checks: the checks' version that decided it (a row read with other checks is checked again).
        """
        status = "labeled" if label is not None else "failed"
        self._write(
            "INSERT OR REPLACE INTO labels (id, sha256, teacher, model_id, prompt_version, schema_version, params, "
            "status, label_json, reason, attempts, input_tokens, output_tokens, cost_usd, updated_at, asks, request, "
            "checks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "COALESCE(?, (SELECT asks FROM labels WHERE id = ?), 0), ?, ?)",
            (
                key.id, key.sha256, key.teacher, key.model_id, key.prompt_version, key.schema_version, key.params,
                status, label.model_dump_json() if label else None, reason, attempts, input_tokens, output_tokens,
                cost_usd, _now(), asks, key.id, key.request, checks,
            ),
        )  # fmt: skip

    def add_answer(self, key: LabelKey, answer: TeacherAnswer, cost_usd: float, attempts: int = 1) -> None:
        """Keep a paid answer as it arrived, before anyone checks it, and count it as an ask of the key.

        The key's row (made here for its first answer) says the answer is not checked yet; whoever checks
        it settles the row. A crash in between loses nothing: the next read checks it.
        """
        with self.transaction():
            self._db.execute(
                "INSERT INTO answers (request_key, teacher, model_id, text, unusable, input_tokens, cached_tokens, "
                "output_tokens, cost_usd, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key.id, key.teacher, key.model_id, answer.text, answer.unusable, answer.input_tokens,
                 answer.cached_tokens, answer.output_tokens, cost_usd, _now()),
            )  # fmt: skip
            updated = self._db.execute(
                "UPDATE labels SET asks = asks + 1, attempts = attempts + ?, input_tokens = input_tokens + ?, "
                "output_tokens = output_tokens + ?, cost_usd = cost_usd + ?, checks = '', updated_at = ? WHERE id = ?",
                (attempts, answer.input_tokens, answer.output_tokens, cost_usd, _now(), key.id),
            ).rowcount
            if not updated:
                self.put(
                    key, reason=UNCHECKED, attempts=attempts, input_tokens=answer.input_tokens,
                    output_tokens=answer.output_tokens, cost_usd=cost_usd, asks=1,
                )  # fmt: skip

    def answers_of(self, key: LabelKey) -> list[StoredAnswer]:
        """Every answer paid for under the key, oldest first."""
        rows = self._db.execute(
            "SELECT text, unusable, input_tokens, cached_tokens, output_tokens, cost_usd, received_at FROM answers "
            "WHERE request_key = ? ORDER BY id",
            (key.id,),
        ).fetchall()
        return [
            StoredAnswer(
                answer=TeacherAnswer(text=text, unusable=unusable, input_tokens=tokens_in, cached_tokens=cached,
                                     output_tokens=tokens_out),
                cost_usd=cost, received_at=received,
            )
            for text, unusable, tokens_in, cached, tokens_out, cost, received in rows
        ]  # fmt: skip

    def settle(
        self, key: LabelKey, *, label: CoachingLabel | None = None, reason: str | None = None, checks: str = ""
    ) -> None:
        """The key's verdict from its answers: a label, or why there is none; its counts stay as they are."""
        self._write(
            "UPDATE labels SET status = ?, label_json = ?, reason = ?, checks = ?, updated_at = ? WHERE id = ?",
            ("labeled" if label is not None else "failed", label.model_dump_json() if label else None,
             None if label is not None else reason, checks, _now(), key.id),
        )  # fmt: skip

    def average_output_tokens(self, model_id: str) -> float | None:
        """What this model's answers were billed as output, on average (thinking included); None before any."""
        row = self._db.execute(
            "SELECT AVG(output_tokens) FROM answers WHERE model_id = ? AND output_tokens > 0", (model_id,)
        ).fetchone()
        return row[0] if row and row[0] else None

    def labeled_images(self, teacher: str) -> int:
        """How many images this teacher has a label for, under any key: what a rebuy is measured against."""
        row = self._db.execute(
            "SELECT COUNT(DISTINCT sha256) FROM labels WHERE teacher = ? AND status = 'labeled'", (teacher,)
        ).fetchone()
        return row[0] if row else 0

    def has_older_label(self, key: LabelKey) -> bool:
        """Whether the image has a label of this teacher under another key (what is asked has changed since)."""
        row = self._db.execute(
            "SELECT 1 FROM labels WHERE sha256 = ? AND teacher = ? AND id != ? AND status = 'labeled' LIMIT 1",
            (key.sha256, key.teacher, key.id),
        ).fetchone()
        return row is not None

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
        self._write(
            "INSERT INTO daily_requests (day, teacher, requests) VALUES (?, ?, ?) "
            "ON CONFLICT (day, teacher) DO UPDATE SET requests = requests + excluded.requests",
            (today(), teacher, requests),
        )

    # Batch jobs: recorded before they are created, collected on a later run.
    def add_batch_intent(
        self,
        display_name: str,
        keys: list[LabelKey],
        samples: list[PoseSample],
        estimated_cost_usd: float,
        estimated_tokens: int = 0,
    ) -> None:
        """Record a job about to be created, under its display name: a crash or a lost answer to
        batches.create leaves a record to look the job up by, instead of an orphaned paid job. A job recorded
        before (a create that failed before it was sent) keeps its record, and its uploaded input file."""
        first = keys[0]
        self._write(
            "INSERT OR IGNORE INTO batches (job_name, teacher, model_id, params, prompt_version, schema_version, "
            "images, state, submitted_at, display_name, samples, recorded, estimated_cost_usd, estimated_tokens, "
            "requests) VALUES (?, ?, ?, ?, ?, ?, ?, 'creating', ?, ?, ?, '[]', ?, ?, ?)",
            (
                intent_name(display_name), first.teacher, first.model_id, first.params, first.prompt_version,
                first.schema_version, json.dumps([k.sha256 for k in keys]), _now(), display_name,
                json.dumps([s.model_dump(mode="json") for s in samples]), estimated_cost_usd, estimated_tokens,
                json.dumps({k.sha256: k.request for k in keys}),
            ),
        )  # fmt: skip

    def batch_uploaded(self, display_name: str, input_file: str) -> None:
        """The job's JSONL input file is on Gemini's Files API: every later try uses it."""
        self._write("UPDATE batches SET input_file = ? WHERE job_name = ?", (input_file, intent_name(display_name)))

    def batch_input_file(self, display_name: str) -> str | None:
        row = self._db.execute(
            "SELECT input_file FROM batches WHERE job_name = ?", (intent_name(display_name),)
        ).fetchone()
        return row[0] if row else None

    def queued_batch_tokens(self, teacher: str) -> int:
        """The estimated input tokens of this teacher's jobs Gemini has not finished (its queue's load)."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(estimated_tokens), 0) FROM batches WHERE teacher = ? AND state = 'submitted'",
            (teacher,),
        ).fetchone()
        return int(row[0] or 0)

    def record_batch_miss(self, job_name: str) -> None:
        """Gemini answered 404 for the job once more."""
        self._write("UPDATE batches SET misses = misses + 1 WHERE job_name = ?", (job_name,))

    def batch_created(self, display_name: str, job_name: str) -> None:
        """The intent's job exists, named job_name."""
        self._write(
            "UPDATE batches SET job_name = ?, state = 'submitted' WHERE job_name = ? AND state = 'creating'",
            (job_name, intent_name(display_name)),
        )

    def drop_batch_intent(self, display_name: str) -> None:
        """The intent's job was never created: its images are free for the next submission."""
        self._write("DELETE FROM batches WHERE job_name = ? AND state = 'creating'", (intent_name(display_name),))

    def open_batches(self, teacher: str) -> list[BatchJob]:
        """This teacher's jobs not collected yet (of any model and prompt), oldest first; intents included."""
        rows = self._db.execute(
            f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches WHERE teacher = ? AND state IN (?, ?) "
            "ORDER BY submitted_at",
            (teacher, *OPEN_BATCH_STATES),
        ).fetchall()
        return [_batch(row) for row in rows]

    def batch_jobs(self, teacher: str) -> list[BatchJob]:
        """Every job this store knows for the teacher, whatever became of it, oldest first."""
        rows = self._db.execute(
            f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches WHERE teacher = ? ORDER BY submitted_at", (teacher,)
        ).fetchall()
        return [_batch(row) for row in rows]

    def batch_names(self, teacher: str) -> frozenset[str]:
        """Every job name this store knows for the teacher, whatever became of the job."""
        rows = self._db.execute("SELECT job_name FROM batches WHERE teacher = ?", (teacher,)).fetchall()
        return frozenset(name for (name,) in rows)

    def record_batch_entries(self, job_name: str, recorded: list[str], billed_cost_usd: float) -> None:
        """The images whose entries of this job are in the labels table now, and what they were billed."""
        self._write(
            "UPDATE batches SET recorded = ?, billed_cost_usd = ? WHERE job_name = ?",
            (json.dumps(sorted(recorded)), billed_cost_usd, job_name),
        )

    def close_batch(self, job_name: str, state: str) -> None:
        """collected (every entry recorded), or how the job ended without results (failed, cancelled, expired)."""
        self._write("UPDATE batches SET state = ? WHERE job_name = ?", (state, job_name))

    def batch_cost_per_request(self, teacher: str, model_id: str) -> float | None:
        """What this model's collected jobs were billed per entry, on average; None before any."""
        rows = self._db.execute(
            "SELECT billed_cost_usd, recorded FROM batches WHERE teacher = ? AND model_id = ? AND state = 'collected' "
            "AND billed_cost_usd IS NOT NULL",
            (teacher, model_id),
        ).fetchall()
        entries = sum(len(json.loads(recorded)) for _, recorded in rows)
        return sum(billed for billed, _ in rows) / entries if entries else None


def _stored(key: LabelKey, row) -> StoredLabel:
    status, label_json, reason, attempts, tokens_in, tokens_out, cost, updated, asks, checks = row
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
        asks=asks,
        checks=checks or "",
    )


def _batch(row) -> BatchJob:
    values = dict(zip(BATCH_COLUMNS, row, strict=True))
    values["images"] = json.loads(values["images"])
    values["recorded"] = json.loads(values["recorded"] or "[]")
    values["samples"] = json.loads(values["samples"]) if values["samples"] else None
    values["requests"] = json.loads(values["requests"]) if values.get("requests") else None
    values["misses"] = values.get("misses") or 0
    return BatchJob.model_validate(values)
