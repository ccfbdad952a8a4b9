"""What the app receives for one take: its `AnalysisResponse` (hackillinois-2026, app/types/index.ts).

A label says what the model saw; the response is the form the app renders. Each feedback point
carries everything a label's point does plus `audio_url`, which the app fills when it voices the
script (we send ""); `improvement_delta` is null from us, since the app's backend computes it from
the user's previous take. `status: "error"` is the app's own: a request that could not be analysed
at all (an unreadable photo, a model that answered nothing usable), never a coaching judgement.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from motioncoach.labels.schema import CoachingLabel, FeedbackPoint


class ResponsePoint(FeedbackPoint):
    """A label's feedback point as the app's FeedbackPoint: the same fields, and where its audio will be."""

    audio_url: str = Field("", description="Filled by the app with the spoken script's audio; '' from the model.")


class AnalysisResponse(BaseModel):
    """The app's AnalysisResponse for one photo."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["success", "low_confidence", "error"] = Field(
        description="'success': coached; 'low_confidence': the photo cannot be coached (the reason is in "
        "error_message); 'error': the request could not be analysed."
    )
    error_message: str | None = Field(None, description="null for success; one sentence for the other statuses.")
    feedback_points: Annotated[list[ResponsePoint], Field(max_length=3)] = Field(
        description="0-3 corrections, major first; none for low_confidence and error."
    )
    positive_note: str = Field(description="One sentence on what the person does well; '' unless success.")
    progress_score: int = Field(ge=0, le=100, description="0-100 for success; 0 otherwise.")
    improvement_delta: int | None = Field(
        None, description="null from the model: the app's backend computes it from the previous take."
    )

    @model_validator(mode="after")
    def _a_reason_unless_coached(self) -> AnalysisResponse:
        if self.status != "success":
            if not (self.error_message or "").strip():
                raise ValueError(f"a {self.status} response says in error_message why")
            if self.feedback_points or self.progress_score:
                raise ValueError(f"a {self.status} response has no feedback points and progress_score 0")
        elif self.error_message is not None:
            raise ValueError("error_message must be null for a success response")
        return self


def response_from_label(label: CoachingLabel) -> AnalysisResponse:
    """The app's form of a label: its points with an empty audio_url, improvement_delta null."""
    return AnalysisResponse(
        status=label.status,
        error_message=label.error_message,
        # The label's points were checked when it was made; they are copied as they are.
        feedback_points=[
            ResponsePoint.model_validate({**point.model_dump(), "audio_url": ""}, context={"stored": True})
            for point in label.feedback_points
        ],
        positive_note=label.positive_note,
        progress_score=label.progress_score,
        improvement_delta=None,
    )


def low_confidence_response(reason: str) -> AnalysisResponse:
    """The photo cannot be coached (nobody in it, the body cut off): reason is one sentence for the user."""
    return AnalysisResponse(
        status="low_confidence", error_message=_reason(reason, "low_confidence_response"), feedback_points=[],
        positive_note="", progress_score=0, improvement_delta=None,
    )  # fmt: skip


def error_response(reason: str) -> AnalysisResponse:
    """The request could not be analysed (an unreadable image, no usable answer): reason says what failed."""
    return AnalysisResponse(
        status="error", error_message=_reason(reason, "error_response"), feedback_points=[], positive_note="",
        progress_score=0, improvement_delta=None,
    )  # fmt: skip


def _reason(reason: str, function: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"{function}(reason=...) needs a non-empty sentence saying why, got {reason!r}")
    return reason.strip()


# The app's overlay (SVGOverlay.tsx) draws a correction's arc only between vectors marked `is_correction` in
# exactly these colours, paired when they start within SAME_START of each other; its backend sends them so.
APP_COLORS = {"red": "#FF3B30", "green": "#34C759"}


def app_payload(
    response: AnalysisResponse, *, timestamp_ms: int = 0, body_parts: list[str | None] | None = None
) -> dict:
    """The JSON the app's own route answers with: the response, each vector in the app's colours and marked
    `is_correction` (with the joint's name, which the app writes above the arc), each feedback point at the
    moment of the clip it is about, and the fields the app types as optional left out rather than null."""
    payload = response.model_dump(mode="json")
    for number, point in enumerate(payload["feedback_points"]):
        point["mistake_timestamp_ms"] = timestamp_ms
        if point.get("positive_note") is None:
            point.pop("positive_note", None)
        part = body_parts[number] if body_parts and number < len(body_parts) else None
        for vector in point["visuals"]["vectors"]:
            vector["color"] = APP_COLORS[vector["color"]]
            vector["is_correction"] = True
            if part:
                vector["body_part"] = part
    for optional in ("error_message", "improvement_delta"):
        if payload[optional] is None:
            del payload[optional]
    return payload
