"""The prompt templates, and the version every label records.

The coaching instructions are written from the same tables the checks use: the body parts a cue may
name and where its arrows start (`labels.cues`), the verbs and which way each turns a joint
(`labels.direction`), the score rubric (`labels.schema`) and the example corrections (`examples`).
"""

from __future__ import annotations

import textwrap
from functools import cache
from importlib.resources import files
from string import Template

from motioncoach.hashing import text_sha256


def _verbs() -> str:
    from motioncoach.labels.direction import VERBS

    effect = {
        "widen": "open the joint's angle",
        "narrow": "close it",
        "raise": "open it or point the limb higher",
        "lower": "close it or point it lower",
    }
    return "; ".join(f"{', '.join(VERBS[d][:-1])} or {VERBS[d][-1]} {effect[d]}" for d in effect) + "."


def _wrapped(text: str, indent: str) -> str:
    """Each line of text wrapped at 100 characters, indented, its continuation lines two further."""
    return "\n".join(
        textwrap.fill(line, 100, initial_indent=indent, subsequent_indent=indent + "  ") for line in text.splitlines()
    )


@cache
def system_prompt() -> str:
    """The coaching instructions: the student's system turn and the teacher's system instruction."""
    from motioncoach.labels.cues import vocabulary
    from motioncoach.labels.grounding import MIN_TURN_DEGREES
    from motioncoach.labels.schema import MIN_SCORE, SEVERITY_PENALTY
    from motioncoach.prompts.examples import example_lines

    penalties = SEVERITY_PENALTY
    rubric = (
        f"- progress_score, after the corrections: the app's score of them, 100 less {penalties['major']} for "
        f"each major, {penalties['intermediate']} for each intermediate and {penalties['minor']} for each minor "
        f"correction, at least {MIN_SCORE} (100 with none)."
    )
    template = Template(files(__name__).joinpath("coach_system.txt").read_text())
    return template.substitute(
        rubric=_wrapped(rubric, ""),
        vocabulary=_wrapped(vocabulary(), "    "),
        verbs=_wrapped(f"Its verb and the Target agree: {_verbs()}", "  "),
        min_turn=f"{MIN_TURN_DEGREES:g}",
        examples=_wrapped(example_lines(), "  "),
    ).strip()


@cache
def teacher_template() -> str:
    """The teacher's user turn, with {activity}, {width}, {height}, {pose} and {cues}."""
    return files(__name__).joinpath("teacher_user.txt").read_text()


def prompt_version() -> str:
    """Short hash of both prompts as sent: a label made from other instructions is stale."""
    return text_sha256(system_prompt() + "\x00" + teacher_template())[:12]
