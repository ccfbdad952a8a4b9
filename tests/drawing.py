"""Drawing a correction on a pose as a careful teacher would: arrows at a keypoint, Current along the
limb, Target turned the way the words say. Independent of the checks, so the tests can hold them to it."""

from __future__ import annotations

import math

from motioncoach.labels.cues import named_parts
from motioncoach.labels.direction import verb_of
from motioncoach.labels.geometry import JOINTS
from motioncoach.labels.grounding import NEIGHBOURS
from motioncoach.records import PoseSample

TURN_DEGREES = 20.0


def _px(sample: PoseSample, name: str) -> tuple[float, float]:
    kp = next(k for k in sample.keypoints if k.name == name)
    return kp.x * sample.width, kp.y * sample.height


def _angle(u, v) -> float:
    cos = (u[0] * v[0] + u[1] * v[1]) / (math.hypot(*u) * math.hypot(*v))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def _turned(v, degrees: float) -> tuple[float, float]:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return v[0] * c - v[1] * s, v[0] * s + v[1] * c


def point(sample: PoseSample, script: str, severity: str, anchor: str, along: str, turn: float, **extra) -> dict | None:
    """A feedback point with both arrows at anchor, Current to along, Target turned by `turn` degrees
    (clockwise on the screen when positive), shortened to stay in the photo; None when it cannot be."""
    start, end = _px(sample, anchor), _px(sample, along)
    limb = (end[0] - start[0], end[1] - start[1])
    wanted = _turned(limb, turn)
    for scale in (1.0, 0.8, 0.6, 0.45):
        tip = ((start[0] + wanted[0] * scale) / sample.width, (start[1] + wanted[1] * scale) / sample.height)
        if 0 <= tip[0] <= 1 and 0 <= tip[1] <= 1:
            break
    else:
        return None
    x, y = start[0] / sample.width, start[1] / sample.height
    return {
        "severity": severity,
        "coaching_script": script,
        "visuals": {
            "overlay_type": "ANGLE_CORRECTION",
            "focus_point": {"x": x, "y": y},
            "vectors": [
                {
                    "start": [x, y],
                    "end": [end[0] / sample.width, end[1] / sample.height],
                    "color": "red",
                    "label": "Current",
                },
                {"start": [x, y], "end": list(tip), "color": "green", "label": "Target"},
            ],
        },  # fmt: skip
        **extra,
    }


def label(*points: dict, score: int = 50, **changes) -> dict:
    """A success label holding the points, as a teacher writes one (its score is any: a label carries the app's)."""
    return {
        "status": "success",
        "error_message": None,
        "positive_note": "Steady and balanced.",
        "progress_score": score,
        "improvement_delta": None,
        "feedback_points": list(points),
        **changes,
    }


def turn_for(sample: PoseSample, script: str, anchor: str, along: str) -> float | None:
    """The turn of Current that does what the script's verb asks (opening or closing the joint the
    arrows sit on, or raising or lowering the limb); TURN_DEGREES either way when it asks nothing.
    None when the pose leaves no room for it (a straight knee cannot straighten)."""
    parts = named_parts(script)
    named = next((n for n in parts if anchor in n.keypoints and n.moves_a_joint), None) or next(
        n for n in parts if anchor in n.keypoints
    )
    claim = verb_of(script, named, parts) if named.moves_a_joint else None
    if claim is None or anchor not in JOINTS:
        return TURN_DEGREES
    proximal, vertex, distal = JOINTS[anchor]
    other = distal if along == proximal else proximal
    confident = sample.confident()
    if other not in confident or along not in (proximal, distal):
        return TURN_DEGREES
    at = _px(sample, vertex)
    limb = (_px(sample, along)[0] - at[0], _px(sample, along)[1] - at[1])
    ref = (_px(sample, other)[0] - at[0], _px(sample, other)[1] - at[1])
    now = _angle(limb, ref)
    direction = claim[0]
    for degrees in (TURN_DEGREES, 10.0):
        for sign in (1, -1):
            wanted = _turned(limb, sign * degrees)
            change = _angle(wanted, ref) - now
            rises = wanted[1] / math.hypot(*wanted) < limb[1] / math.hypot(*limb)
            ok = {
                "widen": change > 0,
                "narrow": change < 0,
                "raise": change > 0 or rises,
                "lower": change < 0 or not rises,
            }[direction]
            # Through neither the neighbour nor straight: the turn stays on the limb's own side.
            if ok and abs(change) > degrees - 0.5:
                return sign * degrees
    return None


def drawn(sample: PoseSample, script: str, severity: str = "intermediate") -> dict | None:
    """The script drawn at the first detected keypoint of what it names, Current along a detected
    segment from there (the joint's distal limb first); None when the pose has none."""
    confident = sample.confident()
    for named in named_parts(script):
        for anchor in named.keypoints:
            if anchor not in confident:
                continue
            order = [JOINTS[anchor][2], JOINTS[anchor][0]] if anchor in JOINTS else []
            order += sorted(NEIGHBOURS.get(anchor, ()))
            along = next((k for k in order if k in confident), None)
            if along is None:
                continue
            turn = turn_for(sample, script, anchor, along)
            if turn is None:
                continue
            drawn_point = point(sample, script, severity, anchor, along, turn)
            if drawn_point is not None:
                return drawn_point
    return None
