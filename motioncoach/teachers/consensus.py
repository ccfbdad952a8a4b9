"""Do two teachers agree on a photo? Per label: score, focus joint and side, correction direction."""

from __future__ import annotations

import math

from pydantic import BaseModel

from motioncoach.labels.grounding import nearest_joint
from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample


class Agreement(BaseModel):
    agree: bool
    score_difference: int
    joints: tuple[str | None, str | None]
    target_angle_difference: float | None
    reasons: list[str]


def _target_direction(label: CoachingLabel, sample: PoseSample) -> float | None:
    """Direction in pixel space of the first correction's Target vector, in degrees."""
    target = label.feedback_points[0].visuals.vectors[1]
    dx = (target.end[0] - target.start[0]) * sample.width
    dy = (target.end[1] - target.start[1]) * sample.height
    return math.degrees(math.atan2(dy, dx)) if math.hypot(dx, dy) > 1e-6 else None


def compare(
    first: CoachingLabel, second: CoachingLabel, sample: PoseSample, score_tolerance: int, angle_tolerance: float
) -> Agreement:
    """Agreement on the main correction: the joint it starts at (which fixes the side), where it points.

    Both must abstain or both coach; a label with no correction agrees only with another without one.
    """
    if first.status != second.status:
        return Agreement(agree=False, score_difference=abs(first.progress_score - second.progress_score),
                         joints=(None, None), target_angle_difference=None,
                         reasons=[f"one teacher says {first.status}, the other {second.status}"])  # fmt: skip
    if not first.feedback_points or not second.feedback_points:
        return _without_corrections(first, second, score_tolerance)
    reasons = []
    score_difference = abs(first.progress_score - second.progress_score)
    if score_difference > score_tolerance:
        reasons.append(f"progress_score differs by {score_difference} (> {score_tolerance})")
    joints = tuple(
        nearest_joint(tuple(label.feedback_points[0].visuals.vectors[0].start), sample) for label in (first, second)
    )
    if joints[0] != joints[1]:
        reasons.append(f"focus joint differs: {joints[0]} vs {joints[1]}")
    directions = [_target_direction(label, sample) for label in (first, second)]
    difference = None
    if None not in directions:
        difference = abs((directions[0] - directions[1] + 180) % 360 - 180)
        if difference > angle_tolerance:
            reasons.append(f"Target vectors point {difference:.0f}° apart (> {angle_tolerance:.0f}°)")
    return Agreement(
        agree=not reasons,
        score_difference=score_difference,
        joints=joints,
        target_angle_difference=difference,
        reasons=reasons,
    )


def _without_corrections(first: CoachingLabel, second: CoachingLabel, score_tolerance: int) -> Agreement:
    """Abstentions, or labels one of which has no correction: agreement is having none on both sides."""
    reasons = []
    if bool(first.feedback_points) != bool(second.feedback_points):
        reasons.append("one teacher corrects the form, the other finds nothing to correct")
    score_difference = abs(first.progress_score - second.progress_score)
    if score_difference > score_tolerance:
        reasons.append(f"progress_score differs by {score_difference} (> {score_tolerance})")
    return Agreement(agree=not reasons, score_difference=score_difference, joints=(None, None),
                     target_angle_difference=None, reasons=reasons)  # fmt: skip
