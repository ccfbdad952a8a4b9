"""Turning a teacher's text into a label we trust, or the reason we don't.

The answer's JSON is fixed where it can be put right exactly (labels/fixes.py), then checked: the
schema, its grounding in the detected pose, and its coherence. The checks' strictness (labeling.checks)
is a setting, and stored answers are checked again whenever it or the checks' code changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache

from pydantic import ValidationError

from motioncoach.config import LabelChecks
from motioncoach.hashing import tree_sha256
from motioncoach.labels.coherence import coherence_problems
from motioncoach.labels.fixes import fix_answer
from motioncoach.labels.grounding import CHECKS, grounding_problems
from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_MAX_REASON = 300
# The code of the checks: a stored answer's verdict is as old as these files and the settings it was read with.
CHECK_SOURCES = ("motioncoach/labels", "motioncoach/teachers/validate.py")


class InvalidAnswer(ValueError):
    """The answer arrived but cannot be used; the message says why, briefly."""


@dataclass(frozen=True)
class Checked:
    """A label that passed the checks, and the fixes it took to get there."""

    label: CoachingLabel
    fixes: list[str] = field(default_factory=list)


@cache
def _checks_code() -> str:
    from pathlib import Path

    return tree_sha256(Path(__file__).resolve().parents[2], CHECK_SOURCES)


def checks_version(checks: LabelChecks = CHECKS) -> str:
    """What a stored verdict depends on: the checks' code and their settings."""
    return f"{_checks_code()}-{checks.fingerprint()}"


def check_answer(text: str, sample: PoseSample, checks: LabelChecks = CHECKS) -> Checked:
    """Fix, parse, validate against the schema, and check grounding and coherence; raise InvalidAnswer otherwise."""
    if not text or not text.strip():
        raise InvalidAnswer("empty answer")
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(f"not valid JSON ({exc.msg} at char {exc.pos} of {len(body)})") from None
    fixes = fix_answer(data, sample, checks) if checks.fix and isinstance(data, dict) else []
    try:
        label = CoachingLabel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "label"
        raise InvalidAnswer(f"schema: {where}: {first['msg']} ({exc.error_count()} error(s))"[:_MAX_REASON]) from None
    ungrounded = grounding_problems(label, sample, checks=checks)
    problems = ungrounded or coherence_problems(label, sample)
    if problems:
        raise InvalidAnswer(f"{'not grounded' if ungrounded else 'incoherent'}: {problems[0]}"[:_MAX_REASON])
    if isinstance(data, dict) and data.get("progress_score") != label.progress_score and not label.abstained:
        fixes.append("score")
    return Checked(label, fixes)


def parse_answer(text: str, sample: PoseSample, checks: LabelChecks = CHECKS) -> CoachingLabel:
    """The label the text makes, after fixes and checks; raise InvalidAnswer otherwise."""
    return check_answer(text, sample, checks).label
