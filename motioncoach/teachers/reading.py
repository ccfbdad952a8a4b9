"""A stored label as today's checks read it: the answers bought under a key are checked again, never bought again,
whenever the checks (their code or labeling.checks) changed since they were decided."""

from __future__ import annotations

from collections.abc import Sequence

from motioncoach.config import LabelChecks
from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample
from motioncoach.teachers.base import BLOCKED
from motioncoach.teachers.store import LabelKey, LabelStore, StoredAnswer, StoredLabel
from motioncoach.teachers.validate import InvalidAnswer, check_answer, checks_version


def decide(
    answers: Sequence[StoredAnswer], sample: PoseSample, checks: LabelChecks
) -> tuple[CoachingLabel | None, str | None, list[str]]:
    """(label, reason, fixes) from a key's answers: the newest one that passes the checks makes the label; when
    none does, the newest answer's reason (a refusal on content stays a refusal)."""
    reasons = []
    for stored in reversed(answers):
        answer = stored.answer
        if answer.unusable:
            blocked = answer.unusable.startswith(BLOCKED)
            reasons.append(answer.unusable if blocked else f"invalid answer: {answer.unusable}")
            continue
        try:
            checked = check_answer(answer.text, sample, checks)
        except InvalidAnswer as exc:
            reasons.append(f"invalid answer: {exc}")
            continue
        return checked.label, None, checked.fixes
    return None, (reasons[0] if reasons else None), []


def current(
    store: LabelStore, key: LabelKey, sample: PoseSample, checks: LabelChecks
) -> tuple[StoredLabel | None, list[str]]:
    """The key's row, decided again from its answers when other checks decided it; with the fixes a label
    decided now took (none when the row stands as it was)."""
    stored = store.get(key)
    version = checks_version(checks)
    if stored is None or stored.checks == version:
        return stored, []
    answers = store.answers_of(key)
    if not answers:  # a label from before answers were kept, or a request that gave up: nothing to read again
        return stored, []
    label, reason, fixes = decide(answers, sample, checks)
    if label is None and stored.status == "labeled" and not _from_answers(stored, answers):
        label = stored.label  # a label older than the answers kept beside it (a store migrated mid-way) stays
    store.settle(key, label=label, reason=reason, checks=version)
    return store.get(key), fixes


def _from_answers(stored: StoredLabel, answers: Sequence[StoredAnswer]) -> bool:
    """Whether the row's asks are all answers kept: its label, if any, came from one of them."""
    return stored.asks <= len(answers)
