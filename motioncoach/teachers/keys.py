"""API keys: read from the environment at the point of use, checked before any work starts."""

from __future__ import annotations

import os

from motioncoach.errors import ConfigurationError

_WHERE = {
    "GEMINI_API_KEY": "create one at https://aistudio.google.com/apikey",
    "OPENROUTER_API_KEY": "create one at https://openrouter.ai/keys",
}
TEACHER_KEYS = {"gemini": "GEMINI_API_KEY", "openrouter": "OPENROUTER_API_KEY"}
LABELER_TEACHERS = {
    "rules": (),
    "gemini": ("gemini",),
    "openrouter": ("openrouter",),
    "consensus": ("gemini", "openrouter"),
}


def required_keys(labeler: str) -> list[str]:
    return [TEACHER_KEYS[t] for t in LABELER_TEACHERS[labeler]]


def check_keys(labeler: str) -> None:
    """Raise, naming each missing variable and where to get it, before anything is downloaded."""
    missing = [name for name in required_keys(labeler) if not os.environ.get(name, "").strip()]
    if missing:
        lines = [f"{name} is not set: {_WHERE[name]} and `export {name}=...`" for name in missing]
        raise ConfigurationError(
            f"--labeler {labeler} needs " + "; ".join(lines) + ". Or choose --labeler rules (offline)."
        )


def api_key(teacher: str) -> str:
    name = TEACHER_KEYS[teacher]
    key = os.environ.get(name, "").strip()
    if not key:
        raise ConfigurationError(f"{name} is not set: {_WHERE[name]} and `export {name}=...`.")
    return key
