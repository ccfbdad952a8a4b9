"""The conversation the model learns, and what the app sends at inference: the activity, the
detected keypoints and the angles measured from them, written by one function both can call."""

from __future__ import annotations

from motioncoach.labels.geometry import measure, view_words
from motioncoach.prompts import prompt_version, system_prompt
from motioncoach.records import PoseSample

__all__ = ["angle_lines", "keypoint_lines", "pose_block", "prompt_version", "system_prompt", "user_prompt"]


def keypoint_lines(sample: PoseSample, min_conf: float = 0.3) -> str:
    """'left_knee: [0.512, 0.733]' for each confident keypoint, in COCO order."""
    return "\n".join(f"{k.name}: [{k.x:.3f}, {k.y:.3f}]" for k in sample.keypoints if k.conf > min_conf)


def angle_lines(sample: PoseSample, min_conf: float = 0.3) -> str:
    """'left_knee: 171' for each measurable angle, whole degrees; '(none measurable)' otherwise."""
    angles = measure(sample, min_conf)
    if not angles:
        return "(none measurable)"
    return "\n".join(f"{name}: {angle.degrees:.0f}" for name, angle in sorted(angles.items()))


def pose_block(sample: PoseSample, min_conf: float = 0.3) -> str:
    """What the detector saw, as both the teacher and the student read it."""
    return (
        f"Camera view (from the keypoints): {view_words(sample, min_conf)}\n"
        "Detected keypoints (x, y normalized, origin top-left):\n"
        f"{keypoint_lines(sample, min_conf) or '(none)'}\n"
        "Measured angles (degrees, in the image plane):\n"
        f"{angle_lines(sample, min_conf)}"
    )


def user_prompt(sample: PoseSample) -> str:
    return f"<image>Activity: {sample.activity}\n{pose_block(sample)}"
