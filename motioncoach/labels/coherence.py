"""What a coach would not sign even when every drawing is grounded: a label that contradicts itself.

One correction per joint (two at the LEFT knee, Bend and Straighten, cannot both be right), no
correction said twice, and no praise in the label's positive note for a part one of its corrections
corrects.
"""

from __future__ import annotations

import math

from motioncoach.labels.cues import Named, named_parts
from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample


def coherence_problems(label: CoachingLabel, sample: PoseSample, min_conf: float = 0.3) -> list[str]:
    """Every way the label contradicts itself; empty when it does not."""
    problems, seen_scripts, joints = [], {}, {}
    seen = sample.confident(min_conf)
    px = {name: (k.x * sample.width, k.y * sample.height) for name, k in seen.items()}
    for number, point in enumerate(label.feedback_points, start=1):
        said = " ".join(point.coaching_script.lower().split()).strip(" .!")
        if said in seen_scripts:
            problems.append(f"feedback points {seen_scripts[said]} and {number} say the same")
        seen_scripts.setdefault(said, number)
        joint = _anchor(point.coaching_script, point.visuals.vectors[0].start, sample, px)
        if joint is not None and joint in joints:
            problems.append(
                f"feedback points {joints[joint]} and {number} both correct the {joint.replace('_', ' ')}: one "
                "correction per joint"
            )
        joints.setdefault(joint, number) if joint else None
    corrected = [(number, n) for number, p in enumerate(label.feedback_points, start=1)
                 for n in named_parts(p.coaching_script)]  # fmt: skip
    for praised in named_parts(label.positive_note):
        hit = next((number for number, n in corrected if _same_part(praised, n)), None)
        if hit is not None:
            problems.append(f"the positive note praises the {praised.words}, which feedback point {hit} corrects")
    return problems


def _anchor(script: str, start, sample: PoseSample, px: dict) -> str | None:
    """The detected keypoint of what the script names nearest the arrows' start."""
    candidates = [k for n in named_parts(script) for k in n.keypoints if k in px]
    if not candidates:
        return None
    at = (start[0] * sample.width, start[1] * sample.height)
    return min(candidates, key=lambda k: math.dist(at, px[k]))


def _same_part(a: Named, b: Named) -> bool:
    """The same part of the body: the same name on the same side, a side covering both, or one region."""
    return a.part == b.part and (a.side == b.side or a.side is None or b.side is None)
