"""What a teacher gets wrong that can be put right exactly, fixed here instead of paying to ask again.

Applied to an answer before it is checked, each fix named so the labeling summary can count it:
- colours: Current drawn green and Target red (each other's colours) are swapped back, and the pair put
  in its order, Current first;
- snapped: an arrow start or focus point within the checks' tolerance of the keypoint its script names
  is moved onto it, each arrow keeping its direction and length (the app pairs a red and a green arrow
  that start within 0.005 of each other);
- score: the label's progress_score is the app's score of its severities whatever the answer said
  (CoachingLabel does this; the fix is counted by comparing).
"""

from __future__ import annotations

import math

from motioncoach.config import LabelChecks
from motioncoach.labels.cues import named_parts
from motioncoach.labels.grounding import tolerance_px
from motioncoach.records import PoseSample

FIXES = ("colours", "snapped", "score")
_NUDGE = 0.0005  # a move under the label's rounding (three decimals) is no move


def fix_answer(data: dict, sample: PoseSample, checks: LabelChecks, min_conf: float = 0.3) -> list[str]:
    """Fix the answer's JSON object in place; the names of the fixes made (each at most once)."""
    made: list[str] = []
    points = data.get("feedback_points")
    for point in points if isinstance(points, list) else []:
        visuals = point.get("visuals") if isinstance(point, dict) else None
        vectors = visuals.get("vectors") if isinstance(visuals, dict) else None
        if not isinstance(vectors, list) or len(vectors) != 2 or not all(isinstance(v, dict) for v in vectors):
            continue
        if _swap_colours(vectors):
            made.append("colours")
        if _snap(point, visuals, vectors, sample, checks, min_conf):
            made.append("snapped")
    return list(dict.fromkeys(made))


def _swap_colours(vectors: list[dict]) -> bool:
    """Current in green and Target in red: each given its own colour, Current first."""
    pairs = {(v.get("label"), v.get("color")) for v in vectors}
    fixed = False
    if pairs == {("Current", "green"), ("Target", "red")}:
        for vector in vectors:
            vector["color"] = "red" if vector["label"] == "Current" else "green"
        fixed = True
    if [v.get("label") for v in vectors] == ["Target", "Current"] and {v.get("color") for v in vectors} == {
        "red", "green",
    }:  # fmt: skip
        vectors.reverse()
        fixed = True
    return fixed


def _snap(point: dict, visuals: dict, vectors: list[dict], sample: PoseSample, checks: LabelChecks, min_conf: float):
    """Move the arrows' starts and the focus point onto the named keypoint nearest them, when within tolerance."""
    parts = named_parts(str(point.get("coaching_script") or ""))
    seen = sample.confident(min_conf)
    px = {name: (k.x * sample.width, k.y * sample.height) for name, k in seen.items()}
    candidates = [k for n in parts for k in n.keypoints if k in px]
    start = _xy(vectors[0].get("start"))
    if not candidates or start is None:
        return False
    start_px = (start[0] * sample.width, start[1] * sample.height)
    anchor = min(candidates, key=lambda k: math.dist(start_px, px[k]))
    tolerance = tolerance_px(px, checks.tolerance)
    if math.dist(start_px, px[anchor]) > tolerance:
        return False
    target = (round(seen[anchor].x, 3), round(seen[anchor].y, 3))
    moved = False
    for vector in vectors:
        begin, end = _xy(vector.get("start")), _xy(vector.get("end"))
        if begin is None or end is None:
            return moved
        if math.dist((begin[0] * sample.width, begin[1] * sample.height), px[anchor]) > tolerance:
            continue  # this arrow starts elsewhere: the checks say so, nothing is guessed
        shift = (target[0] - begin[0], target[1] - begin[1])
        if max(abs(shift[0]), abs(shift[1])) > _NUDGE:
            vector["start"] = list(target)
            vector["end"] = [round(min(1.0, max(0.0, e + d)), 3) for e, d in zip(end, shift, strict=True)]
            moved = True
    focus = visuals.get("focus_point")
    if isinstance(focus, dict) and _xy([focus.get("x"), focus.get("y")]) is not None:
        where = (float(focus["x"]) * sample.width, float(focus["y"]) * sample.height)
        off = max(abs(float(focus["x"]) - target[0]), abs(float(focus["y"]) - target[1]))
        if off > _NUDGE and math.dist(where, px[anchor]) <= tolerance:
            visuals["focus_point"] = {"x": target[0], "y": target[1]}
            moved = True
    return moved


def _xy(value) -> tuple[float, float] | None:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return float(value[0]), float(value[1])
    return None
