"""Checks that a label's drawings sit on the detected body, on the part its words name.

For every correction: the arrows start on a detected keypoint of what the script names (the named
joint on the named side, or a keypoint of the named region), the red Current arrow follows a limb
or body segment from there, the green Target turns at least a few degrees away from it, the way the
script's verb says and within the joint's range (`direction.py`), and the focus point is at the
start. Distances are in pixels relative to the person's size, so a 16:9 photo is judged the same
across as down; at the head, whose keypoints sit close together, relative to the head's size.
"""

from __future__ import annotations

import math

from motioncoach.config import LabelChecks
from motioncoach.labels.cues import HEAD_KEYPOINTS, named_parts
from motioncoach.labels.direction import direction_problem
from motioncoach.labels.geometry import angle_between
from motioncoach.labels.schema import CoachingLabel, FeedbackPoint
from motioncoach.records import PoseSample

CHECKS = LabelChecks()  # how strict the checks are unless told otherwise (labeling.checks)
MIN_TOLERANCE_PX = 6.0
MIN_TURN_DEGREES = CHECKS.min_turn_degrees  # what the prompt asks for
# At the head, whose keypoints sit close together: a share of its size (the widest span of its detected
# keypoints, ear to ear or nose to ear).
HEAD_TOLERANCE = 0.5
# An arrow shorter than the tolerance still shows a direction when it is half as long as the segment it
# follows: a nose-to-eye line, a forearm folded towards the camera.
SEGMENT_SHARE = 0.5
MIN_ARROW_PX = 3.0

_SIDES = ("left", "right")
# COCO-17 body segments, both directions: what a Current arrow may follow from each keypoint.
_SEGMENTS = (
    [("nose", f"{s}_eye") for s in _SIDES]
    + [(f"{s}_eye", f"{s}_ear") for s in _SIDES]
    + [(f"{s}_ear", f"{s}_shoulder") for s in _SIDES]
    + [("nose", f"{s}_shoulder") for s in _SIDES]
    + [("nose", f"{s}_ear") for s in _SIDES]
    + [(f"{s}_{a}", f"{s}_{b}") for s in _SIDES for a, b in
       (("shoulder", "elbow"), ("elbow", "wrist"), ("shoulder", "hip"), ("hip", "knee"), ("knee", "ankle"))]
    + [("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"), ("left_ear", "right_ear"),
       ("left_eye", "right_eye")]
)  # fmt: skip
NEIGHBOURS: dict[str, set[str]] = {}
for _a, _b in _SEGMENTS:
    NEIGHBOURS.setdefault(_a, set()).add(_b)
    NEIGHBOURS.setdefault(_b, set()).add(_a)


def grounding_problems(
    label: CoachingLabel, sample: PoseSample, min_conf: float = 0.3, checks: LabelChecks = CHECKS
) -> list[str]:
    """Every reason the label is not grounded in the detection; empty when it is (and for an abstention)."""
    at = {name: _px(sample, (k.x, k.y)) for name, k in sample.confident(min_conf).items()}  # keypoints in pixels
    tolerance = tolerance_px(at, checks.tolerance)
    problems = []
    for number, point in enumerate(label.feedback_points, start=1):
        problem = _point_problem(point, sample, at, tolerance, checks)
        if problem:
            problems.append(f"feedback point {number}: {problem}")
    return problems


def tolerance_px(at: dict[str, tuple[float, float]], share: float = CHECKS.tolerance) -> float:
    """How far in pixels a drawn point may sit from its keypoint: a share of the person's size."""
    if len(at) < 2:
        return MIN_TOLERANCE_PX
    xs, ys = [p[0] for p in at.values()], [p[1] for p in at.values()]
    return max(MIN_TOLERANCE_PX, share * math.hypot(max(xs) - min(xs), max(ys) - min(ys)))


def head_size_px(at: dict[str, tuple[float, float]]) -> float | None:
    """The widest span between two detected head keypoints, in pixels; None with fewer than two."""
    head = [at[k] for k in HEAD_KEYPOINTS if k in at]
    spans = [math.dist(p, q) for i, p in enumerate(head) for q in head[i + 1 :]]
    return max(spans) if spans else None


def _point_problem(
    point: FeedbackPoint, sample: PoseSample, at: dict[str, tuple[float, float]], tolerance: float, checks: LabelChecks
):
    parts = named_parts(point.coaching_script)
    words = " or ".join(n.words for n in parts)
    current, target = point.visuals.vectors
    start = _px(sample, current.start)
    candidates = [k for n in parts for k in n.keypoints if k in at]
    if not candidates:
        return f"the script names the {words}, and none of its keypoints was detected"
    anchor = min(candidates, key=lambda k: math.dist(start, at[k]))
    shortest = tolerance
    head = head_size_px(at) if anchor in HEAD_KEYPOINTS else None
    if head:
        tolerance = max(MIN_TOLERANCE_PX, min(tolerance, HEAD_TOLERANCE * head))
    mirror = _mirror(anchor)
    if (
        mirror in at
        and mirror not in candidates
        and math.dist(start, at[mirror]) <= tolerance
        and math.dist(start, at[mirror]) < math.dist(start, at[anchor]) - 1
    ):  # a side view's two knees may sit a few pixels apart: the arrows start at the named side's own one
        return f"the script names the {words} but the vectors start at the {_words(mirror)}"
    if math.dist(start, at[anchor]) > tolerance:
        nearest = min(at, key=lambda k: math.dist(start, at[k]))
        if math.dist(start, at[nearest]) <= tolerance:
            return f"the script names the {words} but the vectors start at the {_words(nearest)}"
        return f"the vectors start {math.dist(start, at[anchor]):.0f} px from the {words}, more than {tolerance:.0f} px"
    focus = _px(sample, (point.visuals.focus_point.x, point.visuals.focus_point.y))
    if math.dist(focus, start) > tolerance:
        return "focus_point is not at the vectors' start"
    now = _sub(_px(sample, current.end), start)
    wanted = _sub(_px(sample, target.end), start)
    if min(math.hypot(*now), math.hypot(*wanted)) < MIN_ARROW_PX:
        return "an arrow is too short to show a direction"
    segments = [_sub(at[n], start) for n in NEIGHBOURS.get(anchor, ()) if n in at]
    segments = [segment for segment in segments if math.hypot(*segment) > 1e-6]
    followed = min(segments, key=lambda segment: angle_between(now, segment), default=None)
    off = angle_between(now, followed) if followed else 0.0
    if off > checks.follow_degrees:
        return f"Current does not follow a limb from the {_words(anchor)} ({off:.0f} degrees off the nearest)"
    if followed:
        shortest = max(MIN_ARROW_PX, min(shortest, SEGMENT_SHARE * math.hypot(*followed)))
    if math.hypot(*now) < shortest or math.hypot(*wanted) < shortest:
        return "an arrow is too short to show a direction"
    turn = angle_between(now, wanted) or 0.0
    if turn < checks.min_turn_degrees:
        return f"Target turns only {turn:.1f} degrees from Current: it asks for no change"
    # "Squeeze your glutes and open your RIGHT hip" at the right hip: the hip is the part that turns.
    holding = [n for n in parts if anchor in n.keypoints]
    named = next((n for n in holding if n.moves_a_joint), holding[0])
    return direction_problem(named, point.coaching_script, parts, anchor, at, now, wanted, checks.follow_degrees)


def nearest_joint(label_point: tuple[float, float], sample: PoseSample, min_conf: float = 0.3) -> str | None:
    """The name of the confident keypoint closest to a point, in pixels."""
    confident = sample.confident(min_conf)
    if not confident:
        return None
    at = _px(sample, label_point)
    return min(confident.values(), key=lambda k: math.dist(at, _px(sample, (k.x, k.y)))).name


def _px(sample: PoseSample, point) -> tuple[float, float]:
    return point[0] * sample.width, point[1] * sample.height


def _sub(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return a[0] - b[0], a[1] - b[1]


def _mirror(keypoint: str) -> str:
    """left_knee <-> right_knee; the nose is its own mirror."""
    side, _, kind = keypoint.partition("_")
    return {"left": f"right_{kind}", "right": f"left_{kind}"}.get(side, keypoint)


def _words(keypoint: str) -> str:
    return keypoint.replace("_", " ")
