"""The MotionCoach app's coaching label, as the teacher must write it and the model must learn it.

Schema 3 follows the app's current FeedbackPoint: each correction has a severity and may have its own
positive note, corrections come major first (a label out of order is reordered, not rejected: the
order carries no information the severities do not), and progress_score is the app's own score of
them (`app_score`: whatever score an answer gives, the label carries the app's, as the app's backend
recomputes it). Blank strings and a zero improvement_delta read as null.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, model_validator

from motioncoach.labels.cues import first_side, side_problem

SCHEMA_VERSION = "3"  # 3: severities, per-point positive notes, the score band; 2: abstentions, midline cues

Severity = Literal["major", "intermediate", "minor"]
SEVERITIES: tuple[Severity, ...] = ("major", "intermediate", "minor")
# What the app's backend takes off 100 per correction when it scores a take.
SEVERITY_PENALTY: dict[str, int] = {"major": 12, "intermediate": 5, "minor": 2}
# The app pairs a red and a green arrow that start within this distance of each other (SVGOverlay.tsx).
SAME_START = 0.005
COORDINATE_SLACK = 0.001
_DIGITS = re.compile(r"[0-9°]")


MIN_SCORE = 10


def app_score(severities: list[str]) -> int:
    """The app backend's score of a take: 100 less 12 per major, 5 per intermediate, 2 per minor (10 to 100)."""
    return max(MIN_SCORE, min(100, 100 - sum(SEVERITY_PENALTY[s] for s in severities)))


def _blank_is_null(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _zero_is_null(value: Any) -> Any:
    return None if value == 0 and not isinstance(value, bool) else value


def _checks_answer(info: ValidationInfo) -> bool:
    """Whether the rules of a new answer apply; a label read back from our own store was checked when written."""
    return not (info.context or {}).get("stored")


def _into_the_image(value: Any) -> Any:
    """A coordinate a rounding step outside the image (1.0004, -0.0002) is on its edge."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if -COORDINATE_SLACK <= value < 0:
            return 0.0
        if 1 < value <= 1 + COORDINATE_SLACK:
            return 1.0
    return value


# Three decimals, as the prompts print keypoints: a label never claims more precision than it was given.
Coordinate = Annotated[
    float, Field(ge=0, le=1), BeforeValidator(_into_the_image), AfterValidator(lambda v: round(v, 3))
]
PointXY = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_is_null)]


class Point(BaseModel):
    """A normalized image point; origin top-left."""

    model_config = ConfigDict(extra="forbid")

    x: Coordinate
    y: Coordinate


class Vector(BaseModel):
    """An arrow drawn over the photo: where a limb points now, or where it should point."""

    model_config = ConfigDict(extra="forbid")

    start: PointXY
    end: PointXY
    color: Literal["red", "green"]
    label: Literal["Current", "Target"]


class Visuals(BaseModel):
    """The overlay the app draws for one feedback point."""

    model_config = ConfigDict(extra="forbid")

    overlay_type: Literal["ANGLE_CORRECTION"]
    focus_point: Point
    vectors: Annotated[list[Vector], Field(min_length=2, max_length=2)]

    @model_validator(mode="after")
    def _current_then_target_from_one_joint(self) -> Visuals:
        current, target = self.vectors
        if (current.color, current.label) != ("red", "Current"):
            raise ValueError("the first vector must be the red 'Current' one")
        if (target.color, target.label) != ("green", "Target"):
            raise ValueError("the second vector must be the green 'Target' one")
        if max(abs(a - b) for a, b in zip(current.start, target.start, strict=True)) >= SAME_START:
            raise ValueError(f"both vectors must start at the same joint (within {SAME_START})")
        return self


class FeedbackPoint(BaseModel):
    """One correction: how much it matters, what to change said aloud, and drawn."""

    model_config = ConfigDict(extra="forbid")

    mistake_timestamp_ms: int = Field(0, ge=0, le=0, description="0 for photos.")
    severity: Severity = Field(
        description="major: costs safety or most of the movement's effect; intermediate: a clear fault that costs "
        "some effect; minor: a refinement."
    )
    coaching_script: str = Field(
        min_length=1,
        description="One spoken cue naming a side and joint (LEFT knee) or a midline or paired region "
        "(back, chest, core, hips, shoulders, head, both knees); no digits or degree signs.",
    )
    positive_note: OptionalText = Field(
        None, description="null, or one sentence on what this part of the body already does well."
    )
    visuals: Visuals

    @model_validator(mode="after")
    def _a_cue_that_can_be_spoken_and_located(self, info: ValidationInfo) -> FeedbackPoint:
        if not _checks_answer(info):
            return self
        problem = side_problem(self.coaching_script)
        if problem:
            raise ValueError(problem)
        if _DIGITS.search(self.coaching_script):
            raise ValueError("coaching_script is spoken aloud: write it without digits or degree signs")
        return self

    @property
    def side(self) -> str:
        """The side the script names first: 'left', 'right', or '' for a midline cue."""
        return first_side(self.coaching_script)


class CoachingLabel(BaseModel):
    """The app's coaching JSON for one photo: coaching ('success') or an abstention ('low_confidence')."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["success", "low_confidence"] = Field(
        description="'success' when the photo can be coached; 'low_confidence' when it cannot (no person doing "
        "the activity, body mostly hidden or cut off, too blurry, several people)."
    )
    error_message: OptionalText = Field(
        None, description="null for success; for low_confidence one sentence saying what is missing."
    )
    # The corrections come before the score: a teacher that has written them scores what it wrote.
    feedback_points: Annotated[list[FeedbackPoint], Field(max_length=3)] = Field(
        description="0-3 corrections, major first; none when the form is already good or for low_confidence."
    )
    positive_note: str = Field(description="One sentence on what the person does well; empty for low_confidence.")
    progress_score: int = Field(
        ge=0, le=100, description="The app's score of the corrections (100 less 12, 5, 2 per major, intermediate, "
        "minor, at least 10); 0 to abstain."
    )  # fmt: skip
    improvement_delta: Annotated[int | None, BeforeValidator(_zero_is_null)] = Field(
        None, description="null for a single photo."
    )

    @model_validator(mode="after")
    def _coaching_or_abstaining(self, info: ValidationInfo) -> CoachingLabel:
        if self.improvement_delta is not None:
            raise ValueError("improvement_delta must be null for a photo")
        # Major first, keeping the teacher's order within a severity.
        self.feedback_points.sort(key=lambda p: SEVERITIES.index(p.severity))
        if self.status == "low_confidence":
            if self.feedback_points or self.positive_note.strip():
                raise ValueError("a low_confidence label has no feedback points, progress_score 0, an empty note")
            if not self.error_message:
                raise ValueError("a low_confidence label says in error_message what is missing")
            self.progress_score = 0
            return self
        if self.error_message is not None:
            raise ValueError("error_message must be null for a success label")
        if not self.positive_note.strip():
            raise ValueError("a success label has a positive_note")
        # The app scores a take from its severities; the label says what the app will show.
        self.progress_score = app_score([p.severity for p in self.feedback_points])
        return self

    @property
    def abstained(self) -> bool:
        return self.status == "low_confidence"

    def to_json(self) -> str:
        """The exact text the model is trained to answer with."""
        return self.model_dump_json()


def read_label(text: str) -> CoachingLabel:
    """A label this project wrote earlier (the label store, a dataset row), read back as it was checked then.

    Schema 2 labels had no severities: each point reads as 'intermediate', as the app reads a point
    without one, until the nightly relabel replaces the label.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return CoachingLabel.model_validate_json(text)  # raises pydantic's own error for text that is not JSON
    for point in data.get("feedback_points") or []:
        if isinstance(point, dict):
            point.setdefault("severity", "intermediate")
    return CoachingLabel.model_validate(data, context={"stored": True})
