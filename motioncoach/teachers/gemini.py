"""Gemini as a teacher through google-genai: one call per image, or one Batch API job for many."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Awaitable
from typing import TypeVar

from google import genai
from google.genai import errors, types

from motioncoach.teachers.base import PermanentError, TeacherAnswer, TeacherError, TeacherRequest, TransientError

T = TypeVar("T")

_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# An empty answer that ended like this may well come back on a second try; SAFETY, RECITATION,
# PROHIBITED_CONTENT and a blocked prompt are decided by the content and would only cost again.
_RETRY_FINISH = frozenset({"OTHER", "MALFORMED_RESPONSE", "FINISH_REASON_UNSPECIFIED"})
_BATCH_OK = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
_BATCH_DEAD = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})
# The Batch API refuses inlined requests over 20 MB in all (base64 included).
_INLINE_BATCH_BYTES = 20_000_000
_RETRY_DELAY = re.compile(r"\s*(\d+(?:\.\d+)?)s\s*")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Timeouts and dropped connections of whichever HTTP library the SDK picked: aiohttp, httpx or httpx2."""
    found: list[type[BaseException]] = [TimeoutError, ConnectionError]
    for module, name in (("aiohttp", "ClientError"), ("httpx", "TransportError"), ("httpx2", "TransportError")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


class GeminiTeacher:
    """Gemini Flash through the Gemini Developer API; GOOGLE_GEMINI_BASE_URL redirects it, as the SDK reads it."""

    name = "gemini"

    def __init__(
        self,
        model_id: str = "gemini-3-flash-preview",
        *,
        api_key: str,
        thinking_level: str | None = "low",
        temperature: float | None = None,
        timeout_s: float = 120,
    ):
        self.model_id = model_id
        self.thinking_level = thinking_level
        self.temperature = temperature
        self._key = api_key
        # No base_url: Client() fills it from GOOGLE_GEMINI_BASE_URL when set. One attempt: our engine
        # retries, and an explicit retry_options also stops the aiohttp path's own silent reconnect-retry.
        # v1beta: structured output by JSON schema and thinking levels are served there first.
        http_options = types.HttpOptions(
            api_version="v1beta", timeout=int(timeout_s * 1000), retry_options=types.HttpRetryOptions(attempts=1)
        )
        self._client = genai.Client(api_key=api_key, http_options=http_options)

    def generation_params(self) -> dict:
        """The parameters that change answers: part of the label key."""
        return {"thinking_level": self.thinking_level, "temperature": self.temperature}

    async def ask(self, request: TeacherRequest) -> TeacherAnswer:
        """Label one image; raise TransientError or PermanentError on failure."""
        response = await self._guarded(
            self._client.aio.models.generate_content(
                model=self.model_id, contents=_contents(request), config=self._config(request)
            )
        )
        return _answer(response)

    async def submit_batch(self, requests: list[TeacherRequest]) -> str:
        """Start one Batch API job with the requests inlined; returns the job name to collect later."""
        keys = [r.sha256 for r in requests]
        if not keys or len(set(keys)) != len(keys):
            raise ValueError("submit_batch needs at least one request and distinct sha256 values")
        size = sum(len(r.image_jpeg) * 4 // 3 + len(r.prompt) + len(r.system) for r in requests)
        if size > _INLINE_BATCH_BYTES:
            raise ValueError(f"the batch inlines about {size / 1e6:.1f} MB, over 20 MB: submit fewer requests")
        inlined = [
            types.InlinedRequest(contents=_contents(r), metadata={"key": r.sha256}, config=self._config(r))
            for r in requests
        ]
        job = await self._guarded(
            self._client.aio.batches.create(
                model=self.model_id,
                src=types.BatchJobSource(inlined_requests=inlined),
                config=types.CreateBatchJobConfig(display_name=f"motioncoach-{len(requests)}"),
            )
        )
        return job.name

    async def collect_batch(self, job_name: str) -> dict[str, TeacherAnswer | TeacherError] | None:
        """None while the job runs; then each request's answer or error, keyed by its sha256."""
        job = await self._guarded(self._client.aio.batches.get(name=job_name))
        state = job.state.value if job.state else None
        if state in _BATCH_DEAD:
            raise PermanentError(f"gemini batch {job_name} ended {state}: submit its requests again")
        if state not in _BATCH_OK:
            return None
        if job.dest is None or job.dest.inlined_responses is None:
            if job.dest is not None and job.dest.file_name:
                raise PermanentError(f"gemini batch {job_name} wrote its results to a file, which is not supported")
            return {}
        results: dict[str, TeacherAnswer | TeacherError] = {}
        for item in job.dest.inlined_responses:
            key = (item.metadata or {}).get("key")
            if key is None:
                continue  # the API echoes each request's metadata; an entry without it cannot be matched
            if item.error is not None:
                results[key] = _status_error(item.error.code or 0, None, item.error.message, self._key)
            elif item.response is None:
                results[key] = TransientError("gemini batch entry has neither a response nor an error")
            else:
                try:
                    results[key] = _answer(item.response)
                except TransientError as exc:
                    results[key] = exc
        return results

    async def aclose(self) -> None:
        await self._client.aio.aclose()

    def _config(self, request: TeacherRequest) -> types.GenerateContentConfig:
        # response_json_schema takes real JSON Schema ($defs, $ref, anyOf) as pydantic writes it;
        # response_schema would take only Google's OpenAPI subset.
        thinking = types.ThinkingConfig(thinking_level=self.thinking_level) if self.thinking_level else None
        return types.GenerateContentConfig(
            system_instruction=request.system,
            response_mime_type="application/json",
            response_json_schema=request.response_schema,
            thinking_config=thinking,
            temperature=self.temperature,
        )

    async def _guarded(self, call: Awaitable[T]) -> T:
        """Await an SDK call, turning its failures into our errors; messages never carry the key."""
        try:
            return await call
        except errors.APIError as exc:
            raise _status_error(exc.code, exc.status, exc.message, self._key, _retry_after(exc)) from None
        except _TRANSPORT_ERRORS as exc:
            detail = _redact(str(exc), self._key)
            raise TransientError(f"gemini request failed: {type(exc).__name__} {detail}".strip()) from None
        except json.JSONDecodeError:
            raise TransientError("gemini answered with a body that is not JSON") from None


def _contents(request: TeacherRequest) -> list:
    return [types.Part.from_bytes(data=request.image_jpeg, mime_type="image/jpeg"), request.prompt]


def _answer(response: types.GenerateContentResponse) -> TeacherAnswer:
    """The text and token counts; an empty answer worth retrying raises TransientError."""
    text = response.text or ""
    if not text:
        blocked = response.prompt_feedback is not None and response.prompt_feedback.block_reason is not None
        candidate = response.candidates[0] if response.candidates else None
        reason = candidate.finish_reason.value if candidate and candidate.finish_reason else None
        if not blocked and (reason is None or reason in _RETRY_FINISH):
            raise TransientError(f"gemini returned no text (finish reason {reason or 'missing'})")
    usage = response.usage_metadata
    return TeacherAnswer(
        text=text,
        input_tokens=(usage.prompt_token_count or 0) if usage else 0,
        output_tokens=((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0,
    )


def _status_error(
    code: int, status: str | None, message: str | None, key: str, retry_after: float | None = None
) -> TeacherError:
    text = f"gemini {code} {status or ''}: {_redact(message or '', key)}".replace(" :", ":")
    if code in _TRANSIENT_STATUS:
        return TransientError(text, retry_after=retry_after, status=code)
    return PermanentError(text, status=code)


def _retry_after(exc: errors.APIError) -> float | None:
    """Seconds from a Retry-After header, else from the google.rpc.RetryInfo detail ("retryDelay": "7s")."""
    headers = getattr(exc.response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass  # Google sends seconds; a date form falls through to RetryInfo
    body = exc.details.get("error", exc.details) if isinstance(exc.details, dict) else None
    details = body.get("details") if isinstance(body, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _RETRY_DELAY.fullmatch(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _redact(text: str, key: str) -> str:
    """A short message with the key blanked out, should a server or library ever echo it."""
    return (text.replace(key, "***") if key else text)[:300]
