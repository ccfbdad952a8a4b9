"""The app's AnalysisResponse: what the served model answers for one photo."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from motioncoach.labels.schema import CoachingLabel, FeedbackPoint


class ResponsePoint(FeedbackPoint):
    """A feedback point as the app reads it; the app fills audio_url in itself."""

    audio_url: str = ""


class AnalysisResponse(BaseModel):
    """The app's AnalysisResponse (app/types/index.ts)."""

    status: Literal["success", "low_confidence", "error"]
    error_message: str | None = None
    feedback_points: list[ResponsePoint] = Field(default_factory=list)
    positive_note: str = ""
    progress_score: int = 0
    improvement_delta: int | None = None


def response_from_label(label: CoachingLabel) -> AnalysisResponse:
    data = label.model_dump()
    points = [p | {"audio_url": ""} for p in data["feedback_points"]]
    return AnalysisResponse.model_validate({**data, "feedback_points": points})


def low_confidence_response(reason: str) -> AnalysisResponse:
    return AnalysisResponse(status="low_confidence", error_message=reason)


def error_response(reason: str) -> AnalysisResponse:
    return AnalysisResponse(status="error", error_message=reason)
