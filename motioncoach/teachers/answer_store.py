"""Paid answers kept as they arrived, keyed by the exact request: asked once, read ever after.

The key is a hash of everything the request holds (the teacher, its model and parameters, the system
and user text, the answer schema, the image bytes as sent), so two requests share an answer only when
they are the same request. The text is stored before anyone checks it: a check that changes later
reads the same answer again instead of paying for a new one.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from motioncoach.teachers.base import TeacherAnswer, TeacherRequest
from motioncoach.teachers.store import notify_written
from motioncoach.teachers.store_schema import create_or_migrate


def request_key(teacher: str, model_id: str, params: dict, request: TeacherRequest) -> str:
    """The hash of what is asked: equal keys are equal requests."""
    body = {
        "teacher": teacher,
        "model": model_id,
        "params": params,
        "system": request.system,
        "prompt": request.prompt,
        "schema": request.response_schema,
        "image": hashlib.sha256(request.image_jpeg).hexdigest(),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class StoredAnswer(BaseModel):
    answer: TeacherAnswer
    cost_usd: float
    received_at: str


class AnswerStore:
    """The `answers` table of a label store (labels.sqlite); each put is committed before it returns."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        create_or_migrate(self._db)
        self._lock = threading.Lock()

    def get(self, key: str) -> StoredAnswer | None:
        row = self._db.execute(
            "SELECT text, unusable, input_tokens, output_tokens, cost_usd, received_at FROM answers "
            "WHERE request_key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        text, unusable, tokens_in, tokens_out, cost, received = row
        answer = TeacherAnswer(text=text, unusable=unusable, input_tokens=tokens_in, output_tokens=tokens_out)
        return StoredAnswer(answer=answer, cost_usd=cost, received_at=received)

    def put(self, key: str, teacher: str, model_id: str, answer: TeacherAnswer, cost_usd: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers (request_key, teacher, model_id, text, unusable, input_tokens, "
                "output_tokens, cost_usd, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, teacher, model_id, answer.text, answer.unusable, answer.input_tokens, answer.output_tokens,
                 cost_usd, datetime.now(UTC).isoformat(timespec="microseconds")),
            )  # fmt: skip
        notify_written(self.path)  # a copy of the store elsewhere (store_copy.py) takes it at once

    def close(self) -> None:
        self._db.close()
