"""The MotionCoach app's coaching label, as the teacher must write it and the model must learn it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from motioncoach.labels.cues import first_side, named_parts

SCHEMA_VERSION = "2"  # 2: low_confidence abstentions, midline cues, corrections optional

# Three decimals, as the prompts print keypoints: a label never claims more precision than it was given.
Coordinate = Annotated[float, Field(ge=0, le=1), AfterValidator(lambda v: round(v, 3))]
PointXY = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]


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
        if max(abs(a - b) for a, b in zip(current.start, target.start, strict=True)) > 1e-3:
            raise ValueError("both vectors must start at the same joint")
        return self


class FeedbackPoint(BaseModel):
    """One correction: what to change, said aloud, and drawn."""

    model_config = ConfigDict(extra="forbid")

    mistake_timestamp_ms: int = Field(0, ge=0, le=0, description="0 for photos.")
    coaching_script: str = Field(
        min_length=1,
        description="One spoken cue naming a side and joint (LEFT knee) or a midline or paired region "
        "(back, chest, core, hips, shoulders, head, both knees); no digits or degree signs.",
    )
    visuals: Visuals

    @model_validator(mode="after")
    def _names_a_body_part(self) -> FeedbackPoint:
        if not named_parts(self.coaching_script):
            raise ValueError(
                "coaching_script must name a side and joint (LEFT knee) or a midline or paired region "
                "(back, both knees)"
            )
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
    error_message: str | None = Field(
        None, description="null for success; for low_confidence one sentence saying what is missing."
    )
    positive_note: str = Field(description="One sentence on what the person does well; empty for low_confidence.")
    progress_score: int = Field(ge=0, le=100, description="0-100 by the rubric; 0 for low_confidence.")
    improvement_delta: int | None = Field(None, description="null for a single photo.")
    feedback_points: Annotated[list[FeedbackPoint], Field(max_length=3)] = Field(
        description="0-3 corrections, most important first; none when the form is already good or for low_confidence."
    )

    @model_validator(mode="after")
    def _coaching_or_abstaining(self) -> CoachingLabel:
        if self.improvement_delta is not None:
            raise ValueError("improvement_delta must be null for a photo")
        if self.status == "low_confidence":
            if self.feedback_points or self.progress_score or self.positive_note.strip():
                raise ValueError("a low_confidence label has no feedback points, progress_score 0, an empty note")
            if not (self.error_message or "").strip():
                raise ValueError("a low_confidence label says in error_message what is missing")
            return self
        if self.error_message is not None:
            raise ValueError("error_message must be null for a success label")
        if not self.positive_note.strip():
            raise ValueError("a success label has a positive_note")
        return self

    @property
    def abstained(self) -> bool:
        return self.status == "low_confidence"

    def to_json(self) -> str:
        """The exact text the model is trained to answer with."""
        return self.model_dump_json()
