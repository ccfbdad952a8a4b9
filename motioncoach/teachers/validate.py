"""Turning a teacher's text into a label we trust, or the reason we don't."""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from motioncoach.labels.grounding import grounding_problems
from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_MAX_REASON = 300


class InvalidAnswer(ValueError):
    """The answer arrived but cannot be used; the message says why, briefly."""


def parse_answer(text: str, sample: PoseSample) -> CoachingLabel:
    """Parse, validate against the schema, and check grounding; raise InvalidAnswer otherwise."""
    if not text or not text.strip():
        raise InvalidAnswer("empty answer")
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(f"not valid JSON ({exc.msg} at char {exc.pos} of {len(body)})") from None
    try:
        label = CoachingLabel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "label"
        raise InvalidAnswer(f"schema: {where}: {first['msg']} ({exc.error_count()} error(s))"[:_MAX_REASON]) from None
    problems = grounding_problems(label, sample)
    if problems:
        raise InvalidAnswer(f"not grounded: {problems[0]}"[:_MAX_REASON])
    return label
