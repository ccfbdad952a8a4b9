"""Reading what Gemini answers: a generateContent body as google-genai reads its own, forward-compatibly;
an answer without text; a batch entry's google.rpc error; an HTTP error. Messages never carry the key."""

from __future__ import annotations

import json

from google.genai import models as genai_models
from google.genai import types

from motioncoach.teachers.base import BlockedAnswer, PermanentError, TeacherAnswer, TeacherError, TransientError

_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# An empty answer is billed; SAFETY, RECITATION, PROHIBITED_CONTENT and a blocked prompt are decided
# by the content and would only cost again, so they are refusals. Any other empty answer is unusable.
_BLOCK_FINISH = frozenset(
    {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "LANGUAGE", "MODEL_ARMOR",
    }
)  # fmt: skip
# A batch entry's error is a google.rpc.Status: its code is a google.rpc.Code, given here with the
# HTTP status Google maps it to. The transient ones are worth submitting again; the rest would fail alike.
_RPC_CODES = {
    1: ("CANCELLED", 499), 2: ("UNKNOWN", 500), 3: ("INVALID_ARGUMENT", 400), 4: ("DEADLINE_EXCEEDED", 504),
    5: ("NOT_FOUND", 404), 6: ("ALREADY_EXISTS", 409), 7: ("PERMISSION_DENIED", 403), 8: ("RESOURCE_EXHAUSTED", 429),
    9: ("FAILED_PRECONDITION", 400), 10: ("ABORTED", 409), 11: ("OUT_OF_RANGE", 400), 12: ("UNIMPLEMENTED", 501),
    13: ("INTERNAL", 500), 14: ("UNAVAILABLE", 503), 15: ("DATA_LOSS", 500), 16: ("UNAUTHENTICATED", 401),
}  # fmt: skip
_RPC_TRANSIENT = frozenset({1, 2, 4, 8, 10, 13, 14})


def read_response(body: dict) -> types.GenerateContentResponse:
    """A REST GenerateContentResponse read as google-genai reads its own answers (models.generate_content):
    the Developer API's converter, then every field this SDK version does not know yet dropped "to
    maintain forward compatibility", then validation. Its models forbid unknown fields, so validating
    the raw body would fail on the first field Gemini adds."""
    return types.GenerateContentResponse._from_response(
        response=genai_models._GenerateContentResponse_from_mldev(body), kwargs={}
    )


def answer_from_body(body: str | bytes | dict | None) -> TeacherAnswer:
    """The answer in a generateContent body. A body that cannot be read is still a billed answer: it
    comes back unusable, with the tokens its usageMetadata reports, never as an error to retry."""
    if not isinstance(body, dict):
        try:
            body = json.loads(body or "{}")
        except ValueError:
            return TeacherAnswer(text="", unusable="gemini answered with a body that is not JSON")
    if not isinstance(body, dict):
        return TeacherAnswer(text="", unusable="gemini answered with JSON that is not an object")
    try:
        response = read_response(body)
    except (ValueError, TypeError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
        tokens_in, cached, tokens_out = _reported_tokens(body)
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return TeacherAnswer(
            text="", input_tokens=tokens_in, cached_tokens=cached, output_tokens=tokens_out,
            unusable=f"gemini answered with a body google-genai cannot read ({detail})",
        )  # fmt: skip
    return _answer(response)


def _reported_tokens(body: dict) -> tuple[int, int, int]:
    """Input, cached input and output (answer and thinking) tokens from a raw body's usageMetadata."""
    usage = body.get("usageMetadata")
    if not isinstance(usage, dict):
        return 0, 0, 0

    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and value > 0 else 0

    output = count("candidatesTokenCount") + count("thoughtsTokenCount")
    return count("promptTokenCount"), count("cachedContentTokenCount"), output


def _answer(response: types.GenerateContentResponse) -> TeacherAnswer:
    """The text and token counts (thinking billed as output). An answer without text comes back
    unusable, with its tokens; one refused on its content raises BlockedAnswer, never retried."""
    usage = response.usage_metadata
    answer = TeacherAnswer(
        text=response.text or "",
        input_tokens=(usage.prompt_token_count or 0) if usage else 0,
        # promptTokenCount includes what Gemini's (implicit) cache served: billed at the cached rate.
        cached_tokens=(usage.cached_content_token_count or 0) if usage else 0,
        output_tokens=((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0,
    )
    if answer.text:
        return answer
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        raise BlockedAnswer("gemini", f"prompt blocked ({_enum_value(feedback.block_reason)})", answer)
    candidate = response.candidates[0] if response.candidates else None
    reason = _enum_value(candidate.finish_reason) if candidate and candidate.finish_reason else None
    if reason in _BLOCK_FINISH:
        raise BlockedAnswer("gemini", f"finish reason {reason}", answer)
    # OTHER, MALFORMED_FUNCTION_CALL, MAX_TOKENS, none at all: billed, and asked again only as an unusable answer.
    return answer.model_copy(update={"unusable": f"gemini returned no text (finish reason {reason or 'missing'})"})


def _enum_value(value) -> str:
    return value.value if hasattr(value, "value") else str(value)


def status_error(
    code: int, status: str | None, message: str | None, key: str, retry_after: float | None = None
) -> TeacherError:
    text = f"gemini {code} {status or ''}: {redact(message or '', key)}".replace(" :", ":")
    if code in _TRANSIENT_STATUS:
        return TransientError(text, retry_after=retry_after, status=code)
    return PermanentError(text, status=code)


def job_state(state) -> str:
    """A batch's state as google-genai names it (JOB_STATE_*), from the REST name (BATCH_STATE_*)."""
    text = str(state or "BATCH_STATE_UNSPECIFIED")
    return "JOB_STATE_" + text.removeprefix("BATCH_STATE_") if text.startswith("BATCH_STATE_") else text


def entry_error(error: dict, key: str) -> TeacherError:
    """A batch entry's google.rpc.Status as our error; an HTTP-range code is read as one."""
    code, message = error.get("code") or 0, redact(str(error.get("message") or ""), key)
    if not isinstance(code, int) or code >= 100:
        return status_error(code if isinstance(code, int) else 0, None, message, key)
    name, http = _RPC_CODES.get(code, (f"code {code}", 500))
    text = f"gemini batch request failed: {name} (google.rpc code {code}): {message}"
    if code in _RPC_TRANSIENT or code not in _RPC_CODES:
        return TransientError(text, status=http)
    return PermanentError(text, status=http)


def redact(text: str, key: str) -> str:
    """A short message with the key blanked out, should a server or library ever echo it."""
    return (text.replace(key, "***") if key else text)[:300]
