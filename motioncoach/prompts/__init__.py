"""The prompt templates, and the version every label records."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from motioncoach.hashing import text_sha256


@cache
def system_prompt() -> str:
    """The coaching instructions: the student's system turn and the teacher's system instruction."""
    return files(__name__).joinpath("coach_system.txt").read_text().strip()


@cache
def teacher_template() -> str:
    """The teacher's user turn, with {activity}, {width}, {height}, {keypoints} and {angles}."""
    return files(__name__).joinpath("teacher_user.txt").read_text()


def prompt_version() -> str:
    """Short hash of both templates: a label made from other prompts is stale."""
    return text_sha256(system_prompt() + "\x00" + teacher_template())[:12]
