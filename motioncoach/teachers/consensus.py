"""Do two teachers agree on a photo? Per label: score, and every correction's joint and direction.

Corrections are compared as sets, in any order: each of one teacher's corrections must have a
counterpart in the other's at the same body part whose Target points the same way. The left and
right of a joint count as one part when their keypoints overlap in the photo (a side view, where
the two knees sit a few pixels apart and the detector's sides are a coin toss).
"""

from __future__ import annotations

import math
from itertools import permutations

from pydantic import BaseModel

from motioncoach.labels.grounding import nearest_joint, tolerance_px
from motioncoach.labels.schema import CoachingLabel, FeedbackPoint
from motioncoach.records import PoseSample


class Agreement(BaseModel):
    agree: bool
    score_difference: int
    joints: tuple[str | None, str | None]  # the main (first) correction's joint in each label
    target_angle_difference: float | None  # the largest difference between matched Targets, in degrees
    reasons: list[str]


def target_direction(point: FeedbackPoint, sample: PoseSample) -> float | None:
    """Direction in pixel space of a correction's Target vector, in degrees."""
    target = point.visuals.vectors[1]
    dx = (target.end[0] - target.start[0]) * sample.width
    dy = (target.end[1] - target.start[1]) * sample.height
    return math.degrees(math.atan2(dy, dx)) if math.hypot(dx, dy) > 1e-6 else None


def direction_difference(a: float, b: float) -> float:
    """Degrees between two directions, the short way round: 350 and 10 are 20 apart."""
    return abs((a - b + 180) % 360 - 180)


def same_part(first: str | None, second: str | None, sample: PoseSample, min_conf: float = 0.3) -> bool:
    """The same keypoint, or the left and right of one joint lying on top of each other in the photo."""
    if first is None or second is None:
        return False
    if first == second:
        return True
    sides = {first.split("_", 1)[0], second.split("_", 1)[0]}
    if sides != {"left", "right"} or first.split("_", 1)[1] != second.split("_", 1)[1]:
        return False
    seen = sample.confident(min_conf)
    if first not in seen or second not in seen:
        return False
    at = {k: (kp.x * sample.width, kp.y * sample.height) for k, kp in seen.items()}
    return math.dist(at[first], at[second]) <= tolerance_px(at)


def compare(
    first: CoachingLabel, second: CoachingLabel, sample: PoseSample, score_tolerance: int, angle_tolerance: float
) -> Agreement:
    """Agreement on every correction: the joint it starts at (which fixes the side), where it points.

    Both must abstain or both coach; a label with no correction agrees only with another without one.
    """
    score_difference = abs(first.progress_score - second.progress_score)
    if first.status != second.status:
        return Agreement(agree=False, score_difference=score_difference, joints=(None, None),
                         target_angle_difference=None,
                         reasons=[f"one teacher says {first.status}, the other {second.status}"])  # fmt: skip
    reasons = []
    if score_difference > score_tolerance:
        reasons.append(f"progress_score differs by {score_difference} (> {score_tolerance})")
    if not first.feedback_points or not second.feedback_points:
        if bool(first.feedback_points) != bool(second.feedback_points):
            reasons.insert(0, "one teacher corrects the form, the other finds nothing to correct")
        return Agreement(agree=not reasons, score_difference=score_difference, joints=(None, None),
                         target_angle_difference=None, reasons=reasons)  # fmt: skip
    joints = tuple(
        [_joint(p, sample) for p in label.feedback_points] for label in (first, second)
    )  # fmt: skip
    if len(first.feedback_points) != len(second.feedback_points):
        reasons.append(
            f"one teacher makes {len(first.feedback_points)} corrections, the other {len(second.feedback_points)}"
        )
    pairs = _best_pairs(first.feedback_points, second.feedback_points, joints, sample, angle_tolerance)
    matched = [(i, j, difference) for i, j, difference in pairs if difference is not None]
    for i, j, difference in pairs:
        if difference is None:
            reasons.append(
                f"focus joint differs: {joints[0][i]} vs {joints[1][j]}"
                if not same_part(joints[0][i], joints[1][j], sample)
                else f"correction at the {_words(joints[0][i])} has no Target direction"
            )
        elif difference > angle_tolerance:
            reasons.append(
                f"Target vectors at the {_words(joints[0][i])} point {difference:.0f}° apart (> {angle_tolerance:.0f}°)"
            )
    largest = max((d for _, _, d in matched), default=None)
    return Agreement(
        agree=not reasons,
        score_difference=score_difference,
        joints=(joints[0][0], joints[1][0]),
        target_angle_difference=None if largest is None else round(largest, 1),
        reasons=reasons,
    )


def _joint(point: FeedbackPoint, sample: PoseSample) -> str | None:
    start = point.visuals.vectors[0].start
    return nearest_joint((start[0], start[1]), sample)


def _best_pairs(
    first: list[FeedbackPoint],
    second: list[FeedbackPoint],
    joints: tuple[list[str | None], list[str | None]],
    sample: PoseSample,
    angle_tolerance: float,
) -> list[tuple[int, int, float | None]]:
    """Pair the corrections (three at most each) so the most agree: (i, j, Target difference or None when
    they are at different parts), trying every order of the longer list against the shorter one."""
    cost: dict[tuple[int, int], float | None] = {}
    for i, a in enumerate(first):
        for j, b in enumerate(second):
            directions = target_direction(a, sample), target_direction(b, sample)
            if not same_part(joints[0][i], joints[1][j], sample) or None in directions:
                cost[i, j] = None
            else:
                cost[i, j] = direction_difference(*directions)

    def badness(pairs: list[tuple[int, int]]) -> tuple[int, float]:
        differences = [cost[p] for p in pairs]
        disagreeing = sum(1 for d in differences if d is None or d > angle_tolerance)
        return disagreeing, sum(d for d in differences if d is not None)

    if len(first) <= len(second):
        orders = permutations(range(len(second)), len(first))
        options = [list(zip(range(len(first)), order, strict=True)) for order in orders]
    else:
        orders = permutations(range(len(first)), len(second))
        options = [list(zip(order, range(len(second)), strict=True)) for order in orders]
    best = min(options, key=badness)
    return sorted(((i, j, cost[i, j]) for i, j in best), key=lambda pair: pair[0])


def _words(keypoint: str | None) -> str:
    return (keypoint or "no joint").replace("_", " ")
