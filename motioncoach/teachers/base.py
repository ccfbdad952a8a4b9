"""What every paid teacher speaks: one request in, one answer or a classified error out."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


class TeacherRequest(BaseModel):
    """Everything a teacher needs to label one image. Pure data: no client, no key."""

    model_config = ConfigDict(frozen=True)

    sha256: str = Field(description="Content hash of the image; the request's identity.")
    image_jpeg: bytes = Field(description="The image, downscaled to at most 768 px, JPEG-encoded.")
    system: str = Field(description="System instruction: the MotionCoach coaching instructions.")
    prompt: str = Field(description="User text: activity, keypoints and measured angles.")
    response_schema: dict = Field(description="JSON schema the answer must follow.")


class TeacherAnswer(BaseModel):
    """The raw text a teacher answered with, and what it cost.

    A billed answer without usable text (an empty answer, a body that could not be read) is still an
    answer: `unusable` says why, and its tokens count like any other's.
    """

    text: str
    input_tokens: int = Field(0, description="Prompt tokens billed, those served from the provider's cache included.")
    cached_tokens: int = Field(0, description="Of the prompt tokens, those served from the cache (billed less).")
    output_tokens: int = Field(0, description="Answer tokens, thinking included.")
    cost_usd: float | None = Field(None, description="What the provider says it billed, when it says (OpenRouter).")
    unusable: str | None = None


class TeacherError(Exception):
    """A request failed. The message never holds a key or a header."""


class TransientError(TeacherError):
    """Worth retrying: 429, 5xx, timeouts, dropped connections."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class PermanentError(TeacherError):
    """Retrying cannot help: a bad key (401/403), a bad request (400), an unknown model (404)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


BLOCKED = "blocked by"  # how a content refusal's reason starts, in the store and in reports


class BlockedAnswer(PermanentError):
    """The teacher refused on content (SAFETY, RECITATION, a content filter): asking again only costs again.

    It was still an answer, and billed: `answer` carries its token counts.
    """

    def __init__(self, teacher: str, why: str, answer: TeacherAnswer):
        super().__init__(f"{BLOCKED} {teacher}: {why}")
        self.answer = answer


class Teacher(Protocol):
    """An asynchronous labeling client for one model."""

    name: str  # "gemini" or "openrouter"
    model_id: str

    def generation_params(self) -> dict:
        """The parameters that change answers (temperature, thinking level): part of the label key."""
        ...

    async def ask(self, request: TeacherRequest) -> TeacherAnswer:
        """Send one request; raise TransientError or PermanentError on failure."""
        ...

    async def aclose(self) -> None: ...
