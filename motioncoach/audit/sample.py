"""Which labels people are shown: a fixed sample, stratified by activity, so a rerun asks nothing again.

Every labeled image has a place in line, fixed by a hash of its content; each activity gets its
share of the sample (at least one label while the sample is large enough), filled from the front
of its line. Labels already judged count towards the sample: only the others are asked about, and
a rejected label keeps its place, so rejecting one does not pull another image in. Adding images
moves few places, and a relabeled image keeps its place with its new label.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel

from motioncoach.audit.verdicts import AuditBook, label_key, short_id
from motioncoach.labels.outcomes import LabelReport
from motioncoach.labels.schema import CoachingLabel, read_label
from motioncoach.labels.store import LABELS_FILE

_SALT = "motioncoach-audit"
AUDITABLE = ("labeled", "rejected")  # outcomes whose label can be judged (or was)


class Candidate(BaseModel):
    """A label people may judge: the image, who labeled it, and the label."""

    sha256: str
    activity: str
    labeler: str
    model_id: str
    label: CoachingLabel

    @property
    def short_id(self) -> str:
        return short_id(self.sha256)

    @property
    def label_key(self) -> str:
        return label_key(self.sha256, self.label)


def candidates_of(report: LabelReport) -> list[Candidate]:
    """The labels of a labeling run that can be judged."""
    return _unique(
        Candidate(sha256=o.sample.sha256, activity=o.sample.activity, labeler=o.labeler, model_id=o.model_id,
                  label=o.label)
        for o in report.outcomes
        if o.status in AUDITABLE and o.label is not None
    )  # fmt: skip


def candidates_in(data_dir: Path) -> list[Candidate]:
    """The labels of the data dir's last labeling run (labels.jsonl)."""
    path = Path(data_dir) / LABELS_FILE
    if not path.is_file():
        return []
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return _unique(
        Candidate(sha256=r["sha256"], activity=r.get("activity", ""), labeler=r.get("labeler", ""),
                  model_id=r.get("model_id", ""), label=read_label(json.dumps(r["label"])))
        for r in rows
        if r.get("status") in AUDITABLE and r.get("label")
    )  # fmt: skip


def _unique(candidates: Iterable[Candidate]) -> list[Candidate]:
    return list({c.sha256: c for c in candidates}.values())


def _place(sha256: str) -> str:
    return hashlib.sha256(f"{_SALT}:{sha256}".encode()).hexdigest()


def shares(sizes: dict[str, int], n: int) -> dict[str, int]:
    """n places spread over groups of these sizes: one each while n allows, the rest in proportion
    (largest remainder), never more than a group holds."""
    total = sum(sizes.values())
    n = min(n, total)
    groups = sorted(sizes, key=lambda g: (-sizes[g], g))
    given = {g: 0 for g in groups}
    for group in groups[:n]:  # every activity is seen while the sample allows
        given[group] = 1
    for _ in range(n - sum(given.values())):
        room = [g for g in groups if sizes[g] > given[g]]
        group = max(room, key=lambda g: (n * sizes[g] / total - given[g], sizes[g], g))
        given[group] += 1
    return given


def audit_sample(candidates: Sequence[Candidate], n: int) -> list[Candidate]:
    """The n labels of the audit sample (fewer when fewer are labeled), by activity, in a stable order."""
    by_activity: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_activity.setdefault(candidate.activity, []).append(candidate)
    for line in by_activity.values():
        line.sort(key=lambda c: _place(c.sha256))
    given = shares({a: len(line) for a, line in by_activity.items()}, n)
    return [c for activity in sorted(by_activity) for c in by_activity[activity][: given[activity]]]


def pending(candidates: Sequence[Candidate], n: int, book: AuditBook) -> list[Candidate]:
    """The labels of the sample nobody has judged yet."""
    return [c for c in audit_sample(candidates, n) if book.of_label(c.sha256, c.label) is None]
