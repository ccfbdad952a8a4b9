"""The offline labeler: coaching from measured joint angles and target ranges.

It is the default without an API key, the baseline the fine-tuned model is compared against,
and the source of the angle measurements the teacher prompts include. It corrects only what is
outside its activity's ranges, speaks its cues as a coach would (no numbers: they are read aloud),
and abstains when too little of the body is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

from motioncoach.labels.geometry import BROAD_VIEWS, SAGITTAL, Angle, camera_view, measure, rotate_limb, symmetry
from motioncoach.labels.schema import CoachingLabel, FeedbackPoint, Point, Severity, Vector, Visuals, app_score
from motioncoach.labels.targets import IDEAL_AT_LOW, Range, profile_for, targets_for
from motioncoach.records import PoseSample

MAX_FEEDBACK_POINTS = 3
# Degrees outside the range from which a fault is major or intermediate; below, it is minor.
MAJOR_DEGREES = 25.0
INTERMEDIATE_DEGREES = 10.0
# A correction aims this far inside the range, so the Target turns visibly from the Current arrow.
AIM_INSIDE_DEGREES = 8.0
SMALL_ERROR_DEGREES = 15.0
# Body keypoints (beyond the face) a photo needs before the rules coach it.
MIN_BODY_KEYPOINTS = 5
_BODY = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
TOO_LITTLE_VISIBLE = "Too little of the body is visible to coach this photo; step back so your whole body is in view."

# kind -> (cue to open the angle, cue to close it). {SIDE} is the person's own side.
_MOVES = {
    "knee": ("Straighten your {SIDE} knee{more}.", "Bend your {SIDE} knee{more}."),
    "hip": ("Open your {SIDE} hip{more}, pushing it forward.", "Fold deeper at your {SIDE} hip."),
    "elbow": ("Extend your {SIDE} arm{more}.", "Bend your {SIDE} elbow{more}."),
    "shoulder": ("Raise your {SIDE} arm{more}.", "Bring your {SIDE} arm closer to your body."),
    "trunk_lean": (
        "Hinge forward more from your hips, keeping your back long.",
        "Lift your chest and stack your shoulders over your hips.",
    ),
    "shoulder_tilt": ("Level your shoulders.", "Level your shoulders: let your {SIDE} shoulder drop a little."),
    "head_tilt": ("Level your head.", "Level your head: bring your {SIDE} ear down a little."),
}
# Profiles whose cue for a kind differs: the Russian twist leans back, where others hinge forward.
_PROFILE_MOVES = {
    "twist": {
        "trunk_lean": (
            "Lean your torso back a little more from your hips, keeping your chest lifted.",
            "Bring your torso up a little, keeping your back long.",
        )
    },
}
_NAMES = {"trunk_lean": "torso", "shoulder_tilt": "shoulder line", "head_tilt": "head"}


@dataclass(frozen=True)
class Assessment:
    """An angle against its target range."""

    angle: Angle
    target: Range

    @property
    def error(self) -> float:
        """Degrees outside the range; 0 inside it."""
        low, high = self.target
        return max(low - self.angle.degrees, self.angle.degrees - high, 0.0)

    @property
    def severity(self) -> Severity:
        if self.error >= MAJOR_DEGREES:
            return "major"
        return "intermediate" if self.error >= INTERMEDIATE_DEGREES else "minor"

    @property
    def goal(self) -> float:
        """The angle to aim for: a little inside the range, from the side the angle is on."""
        low, high = self.target
        if self.angle.kind in IDEAL_AT_LOW and low == 0:
            return low
        if self.angle.degrees < low:
            return min(low + AIM_INSIDE_DEGREES, high)
        return max(high - AIM_INSIDE_DEGREES, low)


class RulesLabeler:
    """Turns one kept pose into a coaching label, deterministically."""

    name = "rules"
    model_id = "rules-v3"

    def __init__(self, keypoint_conf: float = 0.3):
        self.keypoint_conf = keypoint_conf

    def label(self, sample: PoseSample) -> CoachingLabel:
        seen = sample.confident(self.keypoint_conf)
        body = [name for name in seen if name.split("_", 1)[-1] in _BODY]
        angles = measure(sample, self.keypoint_conf)
        ranges = targets_for(sample.activity)
        view = camera_view(sample, self.keypoint_conf)
        assessed = [
            Assessment(a, ranges[a.kind])
            for a in angles.values()
            if a.kind in ranges and not (view in BROAD_VIEWS and a.kind in SAGITTAL)
        ]
        if len(body) < MIN_BODY_KEYPOINTS or not assessed:
            return abstain(TOO_LITTLE_VISIBLE)
        faults = sorted((a for a in assessed if a.error > 0), key=lambda a: (-a.error, a.angle.joint))
        faults = _one_per_kind(faults)[:MAX_FEEDBACK_POINTS]
        return CoachingLabel(
            status="success",
            positive_note=_positive_note(assessed, symmetry(angles), sample.activity),
            progress_score=_score(faults),
            improvement_delta=None,
            feedback_points=[_feedback(sample, a) for a in faults],
        )


def abstain(reason: str) -> CoachingLabel:
    """The label for a photo that cannot be coached."""
    return CoachingLabel(status="low_confidence", error_message=reason, positive_note="", progress_score=0,
                         improvement_delta=None, feedback_points=[])  # fmt: skip


def _one_per_kind(faults: list[Assessment]) -> list[Assessment]:
    """The worse side only of a bilateral fault: one cue, not the same cue twice."""
    kept, kinds = [], set()
    for fault in faults:
        if fault.angle.kind not in kinds:
            kept.append(fault)
            kinds.add(fault.angle.kind)
    return kept


def _score(faults: list[Assessment]) -> int:
    """The app's score of the corrections made: what a label carries whatever it is given."""
    return app_score([f.severity for f in faults])


def _positive_note(assessed: list[Assessment], diffs: dict[str, float], activity: str) -> str:
    balanced = [kind for kind, diff in sorted(diffs.items(), key=lambda kv: kv[1]) if diff <= 5]
    if balanced:
        return f"Your {balanced[0]}s are evenly matched left and right."
    good = [a for a in assessed if a.error == 0]
    if good:
        angle = good[0].angle
        return f"Your {_NAMES.get(angle.kind, f'{angle.side.upper()} {angle.kind}')} is well placed."
    if profile_for(activity) == "generic":
        return "You hold a clear, steady position."
    return f"You hold a clear {activity.replace('_', ' ')} position, which makes precise coaching possible."


def _feedback(sample: PoseSample, assessment: Assessment) -> FeedbackPoint:
    angle = assessment.angle
    moves = {**_MOVES, **_PROFILE_MOVES.get(profile_for(sample.activity), {})}
    opening, closing = moves[angle.kind]
    # For leans and tilts a larger angle means leaning further, so "opening" is leaning more.
    move = opening if assessment.goal > angle.degrees else closing
    more = " a little" if assessment.error < SMALL_ERROR_DEGREES else " more"
    script = move.format(SIDE=angle.side.upper(), more=more)
    start = next((k.x, k.y) for k in sample.keypoints if k.name == angle.vertex)
    current_end = next((k.x, k.y) for k in sample.keypoints if k.name == angle.distal)
    return FeedbackPoint(
        mistake_timestamp_ms=0,
        severity=assessment.severity,
        coaching_script=script,
        visuals=Visuals(
            overlay_type="ANGLE_CORRECTION",
            focus_point=Point(x=start[0], y=start[1]),
            vectors=[
                Vector(start=list(start), end=list(current_end), color="red", label="Current"),
                Vector(
                    start=list(start),
                    end=list(rotate_limb(sample, angle, assessment.goal)),
                    color="green",
                    label="Target",
                ),
            ],
        ),
    )
