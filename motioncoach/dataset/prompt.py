"""The conversation the model learns: the same text the app sends at inference."""

from __future__ import annotations

from motioncoach.prompts import prompt_version, system_prompt
from motioncoach.records import PoseSample

__all__ = ["keypoint_lines", "prompt_version", "system_prompt", "user_prompt"]


def keypoint_lines(sample: PoseSample, min_conf: float = 0.3) -> str:
    """'left_knee: [0.512, 0.733]' for each confident keypoint, in COCO order."""
    return "\n".join(f"{k.name}: [{k.x:.3f}, {k.y:.3f}]" for k in sample.keypoints if k.conf > min_conf)


def user_prompt(sample: PoseSample) -> str:
    return (
        f"<image>Activity: {sample.activity}\n"
        "Detected keypoints (x, y normalized, origin top-left):\n"
        f"{keypoint_lines(sample)}"
    )
