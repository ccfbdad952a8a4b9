"""What people said of the teacher's labels: audit.jsonl in the data dir, one verdict per line.

A verdict judges one label: the image's content hash together with the exact label text the
student would be trained on (`label_key`). A relabeled image carries a new label, which is
unjudged until someone looks at it; a verdict never silently passes to another label. The file is
only ever appended to, and the latest verdict on a label is the one that counts, so a reviewer can
change their mind by judging again.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from motioncoach.labels.schema import CoachingLabel

AUDIT_FILE = "audit.jsonl"
SHORT_ID_LENGTH = 10  # hex digits of the image's sha256 shown to reviewers: unique among 50,000 photos
Decision = Literal["approve", "reject"]
AfterReject = Literal["relabel", "drop"]


def label_key(sha256: str, label: CoachingLabel) -> str:
    """The identity of one label of one image: what a verdict judges."""
    return hashlib.sha256(f"{sha256}\n{label.to_json()}".encode()).hexdigest()[:16]


def short_id(sha256: str) -> str:
    return sha256[:SHORT_ID_LENGTH]


class Verdict(BaseModel):
    """One person's judgement of one label."""

    image: str = Field(description="The image's sha256.")
    short_id: str = Field(description="The id the audit showed (the sha256's first digits).")
    label_key: str = Field(description="Which label of the image was judged (label_key()).")
    activity: str = ""
    labeler: str = Field("", description="Who wrote the label (gemini, openrouter, consensus, rules).")
    model_id: str = ""
    verdict: Decision
    reason: str = Field("", description="Why, in the reviewer's words (required to reject).")
    then: AfterReject | None = Field(
        None,
        description="For a rejection: relabel (the nightly relabel asks the teacher again) or drop (the image leaves "
        "the dataset).",
    )
    who: str = Field(description="The reviewer.")
    when: str = Field(description="UTC time of the verdict, ISO 8601.")


def reviewer() -> str:
    """Who is judging in a terminal: the user of this machine."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class AuditBook:
    """Every verdict in a data dir, and the latest one per label and per image."""

    def __init__(self, verdicts: Iterable[Verdict] = ()):
        self.verdicts: list[Verdict] = []
        self._by_label: dict[tuple[str, str], Verdict] = {}
        self._latest_by_image: dict[str, Verdict] = {}
        for verdict in verdicts:
            self._add(verdict)

    def _add(self, verdict: Verdict) -> None:
        self.verdicts.append(verdict)
        self._by_label[(verdict.image, verdict.label_key)] = verdict
        self._latest_by_image[verdict.image] = verdict

    @classmethod
    def read(cls, data_dir: Path) -> AuditBook:
        """The data dir's audit.jsonl (none yet: an empty book); a line that does not parse is reported, not lost."""
        path = Path(data_dir) / AUDIT_FILE
        verdicts = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return cls()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                verdicts.append(Verdict.model_validate_json(line))
            except ValidationError as exc:
                if number == len(lines):  # a last line cut short by a crash: the verdicts before it stand
                    continue
                raise ValueError(f"{path}: line {number} is not a verdict ({exc.error_count()} errors)") from None
        return cls(verdicts)

    def record(self, data_dir: Path, verdicts: Sequence[Verdict]) -> Path:
        """Append verdicts to audit.jsonl, on disk before this returns."""
        path = Path(data_dir) / AUDIT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            for verdict in verdicts:
                out.write(verdict.model_dump_json() + "\n")
            out.flush()
            os.fsync(out.fileno())
        for verdict in verdicts:
            self._add(verdict)
        return path

    def of_label(self, sha256: str, label: CoachingLabel) -> Verdict | None:
        """The latest verdict on exactly this label of this image."""
        return self._by_label.get((sha256, label_key(sha256, label)))

    def dropped(self, sha256: str) -> bool:
        """Whether the latest verdict on this image dropped it from the dataset."""
        latest = self._latest_by_image.get(sha256)
        return latest is not None and latest.verdict == "reject" and latest.then == "drop"

    def keeps_out(self, sha256: str, label: CoachingLabel) -> Verdict | None:
        """The verdict that keeps this label out of training and validation: a rejection of the label itself,
        or of the image (drop); None when it may be used."""
        judged = self.of_label(sha256, label)
        if judged is not None and judged.verdict == "reject":
            return judged
        if self.dropped(sha256):
            return self._latest_by_image[sha256]
        return None

    def to_relabel(self) -> set[str]:
        """Images whose latest verdict rejected their label and asked for a new one."""
        return {v.image for v in self._latest_by_image.values() if v.verdict == "reject" and v.then == "relabel"}

    def __len__(self) -> int:
        return len(self.verdicts)


def parse_verdict_lines(text: str, where: str) -> list[dict]:
    """The JSON lines a reviewer wrote (`--verdicts FILE`): {"id", "verdict", "reason"[, "then"]} each."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: line {number} is not JSON ({exc.msg})") from None
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: line {number} is not a JSON object")
        entries.append({**entry, "line": number})
    return entries


def merge_verdict_files(local: Path, other: Path) -> None:
    """Both files' verdicts in the local one, each once, oldest first (the later verdict on a label counts)."""
    books = [AuditBook.read(Path(p).parent) if Path(p).name == AUDIT_FILE else None for p in (local, other)]
    verdicts = {v.model_dump_json(): v for book in books if book for v in book.verdicts}
    ordered = sorted(verdicts.values(), key=lambda v: v.when)
    partial = Path(local).with_name(f".{Path(local).name}.partial")
    partial.write_text("".join(v.model_dump_json() + "\n" for v in ordered), encoding="utf-8")
    partial.replace(local)
