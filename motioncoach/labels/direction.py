"""Does a correction's Target turn the limb the way its words say, and to where the joint can go?

For a cue at a limb joint (knee, hip, elbow, shoulder) whose Current arrow runs along one of the
joint's two segments, the joint angle is measured twice against the other segment: with Current
(now) and with Target (asked for). Straighten, extend, open and lengthen must widen it; bend, flex,
deepen and fold narrow it; lift and raise widen it or raise the limb; lower, drop and sink narrow it or
lower the limb. A Target that folds a limb through its neighbour (the shin through the thigh) or past
straight further than the joint goes is refused whatever the words. Angles are unsigned, as the
prompt prints them: a limb mirrored across straight reads the same, so a change under
DIRECTION_SLACK_DEGREES makes no claim either way.
"""

from __future__ import annotations

import math
import re

from motioncoach.config import LabelChecks
from motioncoach.labels.cues import Named
from motioncoach.labels.geometry import JOINTS, angle_between

VERBS: dict[str, tuple[str, ...]] = {
    "widen": ("straighten", "extend", "open", "lengthen"),
    "raise": ("lift", "raise"),
    "narrow": ("bend", "flex", "deepen", "fold"),
    "lower": ("lower", "drop", "sink"),
}
# Words that turn a verb around or hedge it ("less bend", "don't lock"): the cue makes no direction claim.
HEDGES = ("less", "reduce", "ease", "soften", "don't", "do not", "not", "never", "avoid", "stop", "without", "too")
DIRECTION_SLACK_DEGREES = 2.0
# How far past straight each joint goes (hyperextension, a hip's extension behind the body, an arm past
# vertical), and how far it closes. The shoulder's arm may pass the torso line (an arm swung back).
PAST_STRAIGHT_DEGREES = {"knee": 10.0, "elbow": 15.0, "hip": 45.0, "shoulder": 45.0}
CLOSEST_DEGREES = {"knee": 25.0, "elbow": 25.0, "hip": 20.0, "shoulder": 0.0}
FOLDS_THROUGH = frozenset({"knee", "elbow", "hip"})
# joint kind -> (the segment towards the proximal keypoint, the one towards the distal keypoint)
SEGMENT_NAMES = {
    "knee": ("thigh", "shin"),
    "hip": ("torso", "thigh"),
    "elbow": ("upper arm", "forearm"),
    "shoulder": ("torso", "upper arm"),
}

_VERB = re.compile(
    rf"\b({'|'.join(v for words in VERBS.values() for v in words)})(?:s|es|ed|ing|ped|ping)?\b", re.IGNORECASE
)
_HEDGE = re.compile(rf"\b({'|'.join(re.escape(h) for h in HEDGES)})\b|n['’]t\b", re.IGNORECASE)
_CLAUSE = re.compile(r"[,;:]|\b(?:and|then|while|as|but)\b", re.IGNORECASE)
_SENTENCE = re.compile(r"[.;!?]")

Px = tuple[float, float]


def verb_of(script: str, named: Named, parts: list[Named]) -> tuple[str, str] | None:
    """(direction, verb) the words ask of the named part, or None when they make no single, plain claim."""
    masked = list(script)
    for part in parts:  # "lower back" and "lower leg" name parts; they ask for nothing
        masked[part.start : part.end] = " " * (part.end - part.start)
    text = "".join(masked)
    for pattern in (_CLAUSE, _SENTENCE):
        start = max((m.end() for m in pattern.finditer(text, 0, named.start)), default=0)
        following = pattern.search(text, named.end)
        span = text[start : following.start() if following else len(text)]
        verbs = [m.group(1).lower() for m in _VERB.finditer(span)]
        if not verbs:
            continue
        if _HEDGE.search(span):
            return None
        directions = {d for d, words in VERBS.items() for v in verbs if v in words}
        return (directions.pop(), verbs[0]) if len(directions) == 1 else None
    return None


def direction_problem(
    named: Named,
    script: str,
    parts: list[Named],
    anchor: str,
    at: dict[str, Px],
    current: Px,
    target: Px,
    follow_degrees: float = LabelChecks().follow_degrees,
) -> str | None:
    """Why the Target contradicts the words or the joint's range, in one line; None when it does not.

    current and target are the arrows as vectors from their start; at holds the detected keypoints in
    pixels. The joint is read as detected (the angle the prompt printed); the Target's direction against
    the detected segment on the joint's other side gives the angle it asks for.
    """
    if not named.moves_a_joint or anchor not in JOINTS:
        return None
    proximal, vertex, distal = JOINTS[anchor]
    along = {k: angle_between(current, _sub(at[k], at[vertex])) for k in (proximal, distal) if k in at}
    along = {k: off for k, off in along.items() if off is not None}
    if not along:
        return None
    followed = min(along, key=along.get)
    reference = distal if followed == proximal else proximal
    if along[followed] > follow_degrees or reference not in at:
        return None
    segment, ref_vec = _sub(at[followed], at[vertex]), _sub(at[reference], at[vertex])
    now, wanted = angle_between(segment, ref_vec), angle_between(target, ref_vec)
    if now is None or wanted is None:
        return None
    side, kind = anchor.split("_", 1)
    joint = f"{side} {kind}"
    other, moved = SEGMENT_NAMES[kind] if followed == distal else reversed(SEGMENT_NAMES[kind])
    a = _signed(ref_vec, segment)
    b = a + _wrap(_signed(ref_vec, target) - a)  # the limb turned the short way round to Target
    if kind in FOLDS_THROUGH and (a > 0 > b or a < 0 < b):
        return f"the Target folds the {moved} through the {other} at the {joint}"
    if abs(b) > 180 and min(180 - now, 180 - wanted) > PAST_STRAIGHT_DEGREES[kind]:
        return f"the Target takes the {joint} {180 - wanted:.0f} degrees past straight, further than it goes"
    if wanted <= CLOSEST_DEGREES[kind] and wanted < now:
        return f"the Target closes the {joint} to {wanted:.0f} degrees, further than it bends"
    claim = verb_of(script, named, parts)
    change = wanted - now
    if claim is None or abs(change) < DIRECTION_SLACK_DEGREES:
        return None
    direction, verb = claim
    height = _unit(segment)[1] - _unit(target)[1]  # > 0: the Target points higher (image y grows down)
    rises = height > 0
    agrees = {
        "widen": change > 0,
        "narrow": change < 0,
        "raise": change > 0 or height > 0,
        "lower": change < 0 or height < 0,
    }[direction]
    if agrees:
        return None
    made = "opens" if change > 0 else "closes"
    also = f" and {'raises' if rises else 'lowers'} the {moved}" if direction in ("raise", "lower") else ""
    return f"the script says '{verb}' but the Target {made} the {joint} from {now:.0f} to {wanted:.0f} degrees{also}"


def _signed(u: Px, v: Px) -> float:
    """Signed angle in degrees from u to v, in (-180, 180]."""
    return math.degrees(math.atan2(u[0] * v[1] - u[1] * v[0], u[0] * v[0] + u[1] * v[1]))


def _wrap(degrees: float) -> float:
    return (degrees + 180) % 360 - 180


def _unit(v: Px) -> Px:
    n = math.hypot(*v)
    return (v[0] / n, v[1] / n) if n else (0.0, 0.0)


def _sub(a: Px, b: Px) -> Px:
    return a[0] - b[0], a[1] - b[1]
