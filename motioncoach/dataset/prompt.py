"""The conversation the model learns: the same text the app sends at inference."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from motioncoach.hashing import text_sha256
from motioncoach.records import PoseSample


@cache
def system_prompt() -> str:
    return files("motioncoach.prompts").joinpath("coach_system.txt").read_text().strip()


def prompt_version() -> str:
    """Short hash of the system prompt: labels and adapters record which one they came from."""
    return text_sha256(system_prompt())[:12]


def keypoint_lines(sample: PoseSample, min_conf: float = 0.3) -> str:
    """'left_knee: [0.512, 0.733]' for each confident keypoint, in COCO order."""
    return "\n".join(f"{k.name}: [{k.x:.3f}, {k.y:.3f}]" for k in sample.keypoints if k.conf > min_conf)


def user_prompt(sample: PoseSample) -> str:
    return (
        f"<image>Activity: {sample.activity}\n"
        "Detected keypoints (x, y normalized, origin top-left):\n"
        f"{keypoint_lines(sample)}"
    )
