"""The MotionCoach app's coaching label, as the teacher must write it and the model must learn it."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = "1"

Coordinate = Annotated[float, Field(ge=0, le=1), AfterValidator(lambda v: round(v, 4))]
PointXY = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]

_SIDE = re.compile(r"\b(LEFT|RIGHT)\b")


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

    mistake_timestamp_ms: int = Field(0, ge=0, description="0 for photos.")
    coaching_script: str = Field(min_length=1, description="Names the LEFT or RIGHT body part.")
    visuals: Visuals

    @model_validator(mode="after")
    def _names_a_side(self) -> FeedbackPoint:
        if not _SIDE.search(self.coaching_script):
            raise ValueError("coaching_script must name a LEFT or RIGHT body part")
        return self

    @property
    def side(self) -> str:
        """The side the script names first: 'left' or 'right'."""
        match = _SIDE.search(self.coaching_script)
        return match.group(1).lower() if match else ""


class CoachingLabel(BaseModel):
    """The app's coaching JSON for one photo."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["success"]
    error_message: None = None
    positive_note: str = Field(min_length=1)
    progress_score: int = Field(ge=0, le=100)
    improvement_delta: int | None = None
    feedback_points: Annotated[list[FeedbackPoint], Field(min_length=1, max_length=3)]

    def to_json(self) -> str:
        """The exact text the model is trained to answer with."""
        return self.model_dump_json()
