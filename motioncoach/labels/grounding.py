"""Checks that a label's drawings sit on the detected body, not somewhere the teacher imagined."""

from __future__ import annotations

import math

from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample

# How far, in normalized units, a vector's start may sit from the keypoint it claims.
DEFAULT_TOLERANCE = 0.03


def grounding_problems(
    label: CoachingLabel, sample: PoseSample, tolerance: float = DEFAULT_TOLERANCE, min_conf: float = 0.3
) -> list[str]:
    """Every reason the label is not grounded in the detection; empty when it is."""
    confident = sample.confident(min_conf)
    problems = []
    for number, point in enumerate(label.feedback_points, start=1):
        current, target = point.visuals.vectors
        start = current.start
        nearest = min(confident.values(), key=lambda k: math.hypot(k.x - start[0], k.y - start[1]), default=None)
        if nearest is None or math.hypot(nearest.x - start[0], nearest.y - start[1]) > tolerance:
            problems.append(
                f"feedback point {number}: vectors start at ({start[0]:.3f}, {start[1]:.3f}), "
                f"not within {tolerance} of a detected keypoint"
            )
            continue
        joint_side = nearest.name.split("_", 1)[0]
        if joint_side in ("left", "right") and point.side and point.side != joint_side:
            problems.append(
                f"feedback point {number}: the script says {point.side.upper()} but the vectors "
                f"start at the {nearest.name.replace('_', ' ')}"
            )
    return problems


def nearest_joint(label_point: tuple[float, float], sample: PoseSample, min_conf: float = 0.3) -> str | None:
    """The name of the confident keypoint closest to a point."""
    confident = sample.confident(min_conf)
    if not confident:
        return None
    x, y = label_point
    return min(confident.values(), key=lambda k: math.hypot(k.x - x, k.y - y)).name
