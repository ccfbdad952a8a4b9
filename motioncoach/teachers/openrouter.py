"""A vision model on OpenRouter as a teacher, through the openai SDK's chat completions."""

from __future__ import annotations

import base64
import email.utils
import os
import time

import openai

from motioncoach.teachers.base import (
    BlockedAnswer,
    PermanentError,
    TeacherAnswer,
    TeacherError,
    TeacherRequest,
    TransientError,
)

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
_TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenRouterTeacher:
    """Any OpenRouter vision model that honours json_schema response formats; OPENROUTER_BASE_URL redirects it."""

    name = "openrouter"

    def __init__(
        self,
        model_id: str = "google/gemma-3-27b-it:free",
        *,
        api_key: str,
        base_url: str | None = None,
        temperature: float | None = 0.2,
        timeout_s: float = 120,
        referer: str | None = None,
        title: str | None = "MotionCoach",
    ):
        self.model_id = model_id
        self.temperature = temperature
        self.base_url = base_url or os.environ.get("OPENROUTER_BASE_URL") or DEFAULT_BASE_URL
        self._key = api_key
        # OpenRouter's optional app attribution headers.
        headers = {name: value for name, value in (("HTTP-Referer", referer), ("X-Title", title)) if value}
        # max_retries=0: our engine retries, with the Retry-After we pass up.
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=api_key, max_retries=0, timeout=timeout_s, default_headers=headers
        )

    def generation_params(self) -> dict:
        """The parameters that change answers: part of the label key."""
        return {"temperature": self.temperature}

    async def ask(self, request: TeacherRequest) -> TeacherAnswer:
        """Label one image; raise TransientError or PermanentError on failure."""
        image_url = "data:image/jpeg;base64," + base64.b64encode(request.image_jpeg).decode()
        try:
            completion = await self._client.chat.completions.create(
                model=self.model_id,
                messages=[
                    {"role": "system", "content": request.system},
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": image_url}},
                            {"type": "text", "text": request.prompt},
                        ],
                    },
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "coaching_label", "strict": True, "schema": request.response_schema},
                },
                # Route only to providers that honour response_format: one that drops it costs retries.
                extra_body={"provider": {"require_parameters": True}},
                **({} if self.temperature is None else {"temperature": self.temperature}),
            )
        except openai.APIStatusError as exc:
            raise _status_error(exc.status_code, exc.body, self._key, _retry_after(exc)) from None
        except openai.APIConnectionError as exc:  # APITimeoutError included
            raise TransientError(f"openrouter request failed: {type(exc).__name__}") from None
        except openai.APIResponseValidationError:
            raise TransientError("openrouter answered with a body that does not parse") from None
        return self._answer(completion)

    async def aclose(self) -> None:
        await self._client.close()

    def _answer(self, completion) -> TeacherAnswer:
        """The text and token counts; an upstream error inside a 200 becomes a TeacherError."""
        choices = getattr(completion, "choices", None) or []
        if not choices:
            # OpenRouter reports some upstream failures as a 200 whose body is {"error": {...}}.
            error = (completion.model_extra or {}).get("error") or {}
            raise _status_error(int(error.get("code") or 502), error, self._key)
        choice = choices[0]
        usage = completion.usage
        reported = (usage.model_extra or {}).get("cost") if usage else None  # what OpenRouter billed, in USD
        cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None) if usage else None
        answer = TeacherAnswer(
            text=(choice.message.content or "") if choice.message else "",
            input_tokens=(usage.prompt_tokens or 0) if usage else 0,
            cached_tokens=cached or 0,
            output_tokens=(usage.completion_tokens or 0) if usage else 0,
            cost_usd=float(reported) if isinstance(reported, int | float) and not isinstance(reported, bool) else None,
        )
        if not answer.text and choice.finish_reason == "content_filter":
            native = (choice.model_extra or {}).get("native_finish_reason")
            raise BlockedAnswer("openrouter", f"content filter ({native or 'no reason given'})", answer)
        if not answer.text:
            why = f"openrouter returned no text (finish reason {choice.finish_reason or 'missing'})"
            if not (answer.input_tokens or answer.output_tokens) and choice.finish_reason in (None, "error"):
                raise TransientError(why)  # an upstream failure nobody billed: worth another try
            return answer.model_copy(update={"unusable": why})  # billed: counted, and asked again only as unusable
        return answer


def _status_error(code: int, body: object, key: str, retry_after: float | None = None) -> TeacherError:
    message = body.get("message", "") if isinstance(body, dict) else ""
    message = (str(message).replace(key, "***") if key else str(message))[:300]
    text = f"openrouter {code}: {message}"
    if code in _TRANSIENT_STATUS or code >= 500:
        return TransientError(text, retry_after=retry_after, status=code)
    return PermanentError(text, status=code)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds to wait from retry-after(-ms), else x-ratelimit-reset, from the headers or the error's metadata."""
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 1000), ("retry-after", 1)):
        seconds = _retry_after_value(headers.get(name), scale)
        if seconds is not None:
            return seconds
    # OpenRouter copies the limiter's headers into error.metadata.headers; its reset is a ms epoch.
    metadata = exc.body.get("metadata") if isinstance(exc.body, dict) else None
    inner = metadata.get("headers") if isinstance(metadata, dict) else None
    inner = {k.lower(): v for k, v in inner.items()} if isinstance(inner, dict) else {}
    return _reset_seconds(headers.get("x-ratelimit-reset") or inner.get("x-ratelimit-reset"))


def _retry_after_value(value: str | None, scale: float = 1) -> float | None:
    """A Retry-After value: seconds (or ms with scale=1000) or an HTTP date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value) / scale)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _reset_seconds(value: object) -> float | None:
    """x-ratelimit-reset: a ms epoch (OpenRouter), a s epoch, or already seconds to wait."""
    try:
        number = float(str(value))
    except ValueError:
        return None
    now = time.time()
    if number > 1e11:
        return max(0.0, number / 1000 - now)
    return max(0.0, number - now) if number > 1e9 else max(0.0, number)
