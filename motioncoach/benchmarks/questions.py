"""What each model is asked about a benchmark item, and how its answer is read.

Multiple-choice items are asked as ExAct asks them (the comments numbered from 1, "respond with the
option number and nothing else"), of every model alike. Form items are asked the coaching question
itself, as the served coach is asked (the training prompt over the detected pose), and the answer's
verdict is read by one rule for every model: a label that corrects nothing of major or intermediate
severity says the form is correct; one that does flags an error; an abstention or an unusable
answer gives no verdict (it finds no error, and does not say the form is correct either).
"""

from __future__ import annotations

import json
import re
from typing import Literal

from motioncoach.benchmarks.suite import BenchmarkItem
from motioncoach.labels.schema import CoachingLabel

MCQ_SYSTEM = "You are an expert coach who judges how people perform physical activities from photos."
FLAGGING = ("major", "intermediate")  # severities that say the form is wrong; a minor one is a refinement
Verdict = Literal["ok", "error", "none"]
_NUMBER = re.compile(r"(?<![\d.])(\d{1,2})(?![\d.])")


def mcq_question(item: BenchmarkItem) -> str:
    """The user turn of a multiple-choice item."""
    assert item.choices is not None
    options = "\n".join(f"Option {number}: {choice}" for number, choice in enumerate(item.choices, start=1))
    return (
        f"Activity: {item.activity}\n\n"
        f"Below are different feedback statements about the person's performance in this photo:\n\n{options}\n\n"
        f"Based on what you observe in the photo, which option provides the most accurate feedback? Just respond "
        f"with the option number (1-{len(item.choices)}) and nothing else."
    )


def mcq_schema(choices: int) -> dict:
    """The structured answer a teacher API is held to: the option number."""
    return {
        "type": "object",
        "properties": {
            "answer": {"type": "integer", "minimum": 1, "maximum": choices, "description": "The option number."}
        },
        "required": ["answer"],
        "additionalProperties": False,
    }


def read_choice(text: str, choices: int) -> int | None:
    """The 0-based choice an answer names ({"answer": n}, "3", "Option 3 ..."), or None."""
    text = (text or "").strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("answer"), int):
        number = value["answer"]
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _NUMBER.search(text)
        number = int(match.group(1)) if match else 0
    return number - 1 if 1 <= number <= choices else None


def form_verdict(label: CoachingLabel | None) -> Verdict:
    """What a coaching label says of the form (see the module docstring)."""
    if label is None or label.abstained:
        return "none"
    return "error" if any(p.severity in FLAGGING for p in label.feedback_points) else "ok"
