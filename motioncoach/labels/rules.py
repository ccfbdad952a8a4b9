"""The offline labeler: coaching from measured joint angles and target ranges.

It is the default without an API key, the baseline the fine-tuned model is compared against,
and the source of the angle measurements the teacher prompts include.
"""

from __future__ import annotations

from dataclasses import dataclass

from motioncoach.errors import LabelError
from motioncoach.labels.geometry import Angle, measure, rotate_limb, symmetry
from motioncoach.labels.schema import CoachingLabel, FeedbackPoint, Point, Vector, Visuals
from motioncoach.labels.targets import IDEAL_AT_LOW, Range, targets_for
from motioncoach.records import PoseSample

MAX_FEEDBACK_POINTS = 3
ASYMMETRY_NOTE_DEGREES = 15.0
# Points lost per degree outside the target ranges, summed over the joints.
SCORE_PER_DEGREE = 0.6

# kind -> (what to say to open the angle, what to say to close it)
_MOVES = {
    "knee": ("Straighten your {SIDE} knee", "Bend your {SIDE} knee more"),
    "hip": ("Open your {SIDE} hip", "Fold deeper at your {SIDE} hip"),
    "elbow": ("Extend your {SIDE} arm", "Bend your {SIDE} elbow more"),
    "shoulder": ("Raise your {SIDE} arm", "Bring your {SIDE} arm closer to your body"),
    "trunk_lean": (
        "Lean your torso further forward from the {SIDE} hip",
        "Lift your chest, stacking your {SIDE} shoulder over your {SIDE} hip",
    ),
    "shoulder_tilt": ("Raise your {SIDE} shoulder a little", "Drop your {SIDE} shoulder to level your shoulders"),
    "head_tilt": ("Tilt your head towards your {SIDE} ear", "Lower your {SIDE} ear to level your head"),
}
# How the script names what it measured.
_MEASURED = {
    "trunk_lean": "your torso leans",
    "shoulder_tilt": "your shoulder line tilts",
    "head_tilt": "your head tilts",
}


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
    def ideal(self) -> float:
        low, high = self.target
        return low if self.angle.kind in IDEAL_AT_LOW else (low + high) / 2

    @property
    def off_centre(self) -> float:
        """Distance from the ideal, in half-widths of the range: inside the range it is <= 2."""
        low, high = self.target
        return abs(self.angle.degrees - self.ideal) / max((high - low) / 2, 1.0)

    @property
    def goal(self) -> float:
        """The angle to aim for: the nearest edge when outside, a step towards the ideal inside."""
        low, high = self.target
        if self.error:
            return min(max(self.angle.degrees, low), high)
        return self.angle.degrees + (self.ideal - self.angle.degrees) / 2


class RulesLabeler:
    """Turns one kept pose into a coaching label, deterministically."""

    name = "rules"
    model_id = "rules-v1"

    def __init__(self, keypoint_conf: float = 0.3):
        self.keypoint_conf = keypoint_conf

    def label(self, sample: PoseSample) -> CoachingLabel:
        angles = measure(sample, self.keypoint_conf)
        ranges = targets_for(sample.activity)
        assessed = [Assessment(a, ranges[a.kind]) for a in angles.values() if a.kind in ranges]
        if not assessed:
            raise LabelError("no measurable joint angle: too few limb keypoints detected")
        worst_first = sorted(assessed, key=lambda a: (-a.error, -a.off_centre, a.angle.joint))
        faults = [a for a in worst_first if a.error > 0][:MAX_FEEDBACK_POINTS] or worst_first[:1]
        diffs = symmetry(angles)
        return CoachingLabel(
            status="success",
            positive_note=_positive_note(worst_first, diffs),
            progress_score=_score(assessed),
            improvement_delta=None,
            feedback_points=[_feedback(sample, a, angles, diffs) for a in faults],
        )


def _score(assessed: list[Assessment]) -> int:
    return int(round(max(0.0, min(100.0, 100 - SCORE_PER_DEGREE * sum(a.error for a in assessed)))))


def _positive_note(worst_first: list[Assessment], diffs: dict[str, float]) -> str:
    balanced = [kind for kind, diff in sorted(diffs.items(), key=lambda kv: kv[1]) if diff <= 5]
    if balanced:
        return f"Your {balanced[0]}s are well balanced: left and right within {diffs[balanced[0]]:.0f}°."
    best = worst_first[-1]
    if best.error == 0:
        return f"Your {_describe(best.angle)} is well placed at {best.angle.degrees:.0f}°."
    return "You hold a clear, readable position, which makes precise coaching possible."


def _describe(angle: Angle) -> str:
    names = {"trunk_lean": "torso", "shoulder_tilt": "shoulder line", "head_tilt": "head position"}
    return names.get(angle.kind, f"{angle.side.upper()} {angle.kind}")


def _feedback(
    sample: PoseSample, assessment: Assessment, angles: dict[str, Angle], diffs: dict[str, float]
) -> FeedbackPoint:
    angle = assessment.angle
    opening, closing = _MOVES[angle.kind]
    # For leans and tilts a larger angle means leaning further, so "opening" is leaning more.
    move = opening if assessment.goal > angle.degrees else closing
    low, high = assessment.target
    what = _MEASURED.get(angle.kind, "it is at")
    script = f"{move.format(SIDE=angle.side.upper())}: {what} {angle.degrees:.0f}°, aim for {low:.0f}-{high:.0f}°."
    other = f"{'right' if angle.side == 'left' else 'left'}_{angle.kind}"
    if diffs.get(angle.kind, 0) > ASYMMETRY_NOTE_DEGREES and other in angles:
        script += f" Your {other.split('_')[0].upper()} {angle.kind} is at {angles[other].degrees:.0f}°."
    start = next((k.x, k.y) for k in sample.keypoints if k.name == angle.vertex)
    current_end = next((k.x, k.y) for k in sample.keypoints if k.name == angle.distal)
    return FeedbackPoint(
        mistake_timestamp_ms=0,
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
