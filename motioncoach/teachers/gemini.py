"""Gemini as a teacher through google-genai: one call per image, or one Batch API job for many."""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import re
import tempfile
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlencode

from google import genai
from google.genai import errors, types
from pydantic import ValidationError

from motioncoach.errors import ConfigurationError
from motioncoach.teachers.base import (
    TeacherAnswer,
    TeacherError,
    TeacherRequest,
    TransientError,
)
from motioncoach.teachers.capabilities import gemini_model_name, thinking_params
from motioncoach.teachers.gemini_answers import answer_from_body, entry_error, job_state, redact, status_error

T = TypeVar("T")

_BATCH_OK = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
_BATCH_DEAD = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})
LIST_PAGE_SIZE = 100
# The Batch API refuses an inlined job over 20 MB in all (base64 included): inline up to a margin
# below it, else send a JSONL input file (the Files API takes up to 2 GB).
INLINE_BATCH_BUDGET = 18_000_000
FILE_BATCH_BYTES = 2_000_000_000
_RETRY_DELAY = re.compile(r"\s*(\d+(?:\.\d+)?)s\s*")


@dataclass
class BatchResults:
    """A batch job as Gemini reports it now; once it succeeded, each entry's answer or error by image
    sha256, and how many entries named no image."""

    state: str
    answers: dict[str, TeacherAnswer | TeacherError] = field(default_factory=dict)
    unmatched: int = 0
    # Entries that named no image, by their place among all entries: Gemini writes the responses in
    # the order of the requests, so a job whose entries are all there can still place them.
    unkeyed: dict[int, TeacherAnswer | TeacherError] = field(default_factory=dict)
    entries: int = 0

    @property
    def succeeded(self) -> bool:
        return self.state in _BATCH_OK

    @property
    def ended_without_results(self) -> bool:
        """FAILED, CANCELLED or EXPIRED: the only states that give the job's images back."""
        return self.state in _BATCH_DEAD


def inline_batch_bytes(requests: list[TeacherRequest]) -> int:
    """An upper bound of the inlined job's request size: base64 images, texts, schemas and JSON framing."""
    per_request = 1024
    return sum(
        (len(r.image_jpeg) + 2) // 3 * 4 + len(r.prompt.encode()) + len(r.system.encode())
        + len(json.dumps(r.response_schema)) + per_request
        for r in requests
    )  # fmt: skip


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
        thinking_budget: int | None = None,
        temperature: float | None = None,
        timeout_s: float = 120,
    ):
        self.model_id = gemini_model_name(model_id)
        # Only what this model family takes: a level for Gemini 3, a budget for 2.5, nothing before.
        self.thinking = thinking_params(self.model_id, thinking_level, thinking_budget)
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
        return {**self.thinking, "temperature": self.temperature}

    async def ask(self, request: TeacherRequest) -> TeacherAnswer:
        """Label one image; raise TransientError or PermanentError on failure."""
        # The REST body (what a batch file's line holds too) goes through the SDK's own transport: its
        # key, base URL, timeout and errors. models.generate_content would first deep-copy and convert
        # the config and schema per call, which halves what one process can send (bench/labeling_throughput.py).
        reply = await self._guarded(
            self._client.aio._api_client.async_request(
                "post", f"models/{self.model_id}:generateContent", self._rest_request(request)
            )
        )
        return answer_from_body(reply.body)

    def needs_upload(self, requests: list[TeacherRequest]) -> bool:
        """Whether a job of these requests goes as a JSONL input file (over Gemini's 20 MB inline limit)."""
        return inline_batch_bytes(requests) > INLINE_BATCH_BUDGET

    async def upload_batch_input(self, requests: list[TeacherRequest], display_name: str) -> str:
        """Upload the job's requests as the Batch API's JSONL input file, once; the file's name."""
        return await self._upload_requests(requests, display_name)

    async def submit_batch(
        self, requests: list[TeacherRequest], display_name: str, input_file: str | None = None
    ) -> str:
        """Start one Batch API job; returns the job name to collect later.

        The requests go inline, each the REST body an online request sends, or, given input_file (an
        uploaded JSONL of the same bodies), by that file's name. display_name is how find_batch finds
        the job when the answer to this call is lost.
        """
        keys = [r.sha256 for r in requests]
        if not keys or len(set(keys)) != len(keys):
            raise ValueError("submit_batch needs at least one request and distinct sha256 values")
        if input_file is not None:
            source: dict = {"fileName": input_file}
        else:
            inlined = [{"request": self._rest_request(r), "metadata": {"key": r.sha256}} for r in requests]
            source = {"requests": {"requests": inlined}}
        body = {"batch": {"displayName": display_name, "inputConfig": source}}
        reply = await self._guarded(
            self._client.aio._api_client.async_request("post", f"models/{self.model_id}:batchGenerateContent", body)
        )
        try:
            operation = json.loads(reply.body or "{}")
        except ValueError:
            raise TransientError("gemini answered a batch create with a body that is not JSON") from None
        name = operation.get("name") or (operation.get("metadata") or {}).get("name")
        if not name:
            raise TransientError("gemini answered a batch create without the job's name")
        return name

    async def find_batch(self, display_name: str, known: frozenset[str] = frozenset()) -> str | None:
        """The name of a live or finished job of this display name that is not one of `known`, or None.

        After a create that timed out or failed with a 5xx the job may exist all the same; asking
        first is what keeps it from being paid for twice.
        """
        token = None
        while True:
            query = {"pageSize": LIST_PAGE_SIZE} | ({"pageToken": token} if token else {})
            page = await self._get_json(f"batches?{urlencode(query)}")
            for operation in page.get("operations") or []:
                metadata = operation.get("metadata") or {}
                name, state = operation.get("name") or metadata.get("name"), job_state(metadata.get("state"))
                if metadata.get("displayName") == display_name and name not in known and state not in _BATCH_DEAD:
                    return name
            token = page.get("nextPageToken")
            if not token:
                return None

    async def _get_json(self, path: str) -> dict:
        """A GET through the SDK's transport (its key, base URL, timeout and errors), read as plain JSON:
        a job or a list of jobs is read for the few fields used, so no field Gemini adds can break it."""
        reply = await self._guarded(self._client.aio._api_client.async_request("get", path, {}))
        try:
            body = json.loads(reply.body or "{}")
        except ValueError:
            raise TransientError("gemini answered with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise TransientError("gemini answered with JSON that is not an object")
        return body

    async def _upload_requests(self, requests: list[TeacherRequest], display_name: str) -> str:
        """Write the requests as the Batch API's JSONL input file and upload it; the file's name."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "requests.jsonl"
            size = await asyncio.to_thread(self._write_jsonl, requests, path)
            if size > FILE_BATCH_BYTES:
                raise ConfigurationError(
                    f"a Gemini batch input file of {size / 1e9:.2f} GB is over the Files API's 2 GB: "
                    "lower labeling.batch_job_requests"
                )
            config = types.UploadFileConfig(mime_type="jsonl", display_name=f"{display_name}-requests")
            uploaded = await self._guarded(self._client.aio.files.upload(file=str(path), config=config))
        return uploaded.name

    def _write_jsonl(self, requests: list[TeacherRequest], path: Path) -> int:
        with path.open("w", encoding="utf-8") as out:
            for request in requests:
                out.write(json.dumps({"key": request.sha256, "request": self._rest_request(request)}) + "\n")
        return path.stat().st_size

    def _rest_request(self, request: TeacherRequest) -> dict:
        """A GenerateContentRequest as the REST API spells it: what one line of the input file holds."""
        generation: dict = {"responseMimeType": "application/json", "responseJsonSchema": request.response_schema}
        if "thinking_level" in self.thinking:
            generation["thinkingConfig"] = {"thinkingLevel": self.thinking["thinking_level"].upper()}
        elif "thinking_budget" in self.thinking:
            generation["thinkingConfig"] = {"thinkingBudget": self.thinking["thinking_budget"]}
        if self.temperature is not None:
            generation["temperature"] = self.temperature
        image = {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(request.image_jpeg).decode()}}
        return {
            "contents": [{"role": "user", "parts": [image, {"text": request.prompt}]}],
            "systemInstruction": {"role": "user", "parts": [{"text": request.system}]},
            "generationConfig": generation,
        }

    async def collect_batch(self, job_name: str) -> BatchResults:
        """The job's state; once it succeeded, each request's answer or error, keyed by its sha256.

        A job whose state or results cannot be read raises TransientError or PermanentError: the
        caller keeps it and asks again later, since only Gemini's FAILED, CANCELLED or EXPIRED mean
        its requests will never be answered.
        """
        operation = await self._get_json(job_name)
        metadata = operation.get("metadata") or {}
        results = BatchResults(state=job_state(metadata.get("state")))
        if not results.succeeded:
            return results
        output = metadata.get("output") or operation.get("response") or {}
        if output.get("responsesFile"):
            data = await self._guarded(self._client.aio.files.download(file=output["responsesFile"]))
            for line in data.decode("utf-8", errors="replace").splitlines():
                if line.strip():
                    self._add_line(results, line)
        else:
            inlined = output.get("inlinedResponses") or {}
            for item in (inlined.get("inlinedResponses") if isinstance(inlined, dict) else inlined) or []:
                entry = item if isinstance(item, dict) else {}
                key = (entry.get("metadata") or {}).get("key")
                response = entry.get("response")
                self._add_result(results, key, entry.get("error"), response if isinstance(response, dict) else None)
        return results

    def _add_line(self, results: BatchResults, line: str) -> None:
        """One line of a results file: {"key", "response" | "error"}."""
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):  # nothing to read, not even a key
            results.entries += 1
            results.unmatched += 1
            return
        body = entry.get("response")
        error = entry.get("error") or entry.get("status")  # a google.rpc.Status, under either name
        self._add_result(results, entry.get("key"), error, body if isinstance(body, dict) else None)

    def _add_result(self, results: BatchResults, key, error, response: dict | None) -> None:
        """One entry: its error, else its response body, read as online answers are."""
        if error:
            result = entry_error(error if isinstance(error, dict) else {}, self._key)
        elif response is None:
            result = TransientError("gemini batch entry has neither a response nor an error")
        else:
            try:
                result = answer_from_body(response)
            except TeacherError as exc:
                result = exc
        if isinstance(key, str):  # the API echoes each request's key
            results.answers[key] = result
        else:
            results.unkeyed[results.entries] = result
            results.unmatched += 1
        results.entries += 1

    async def aclose(self) -> None:
        await self._client.aio.aclose()

    async def _guarded(self, call: Awaitable[T]) -> T:
        """Await an SDK call, turning its failures into our errors; messages never carry the key."""
        try:
            return await call
        except errors.APIError as exc:
            raise status_error(exc.code, exc.status, exc.message, self._key, _retry_after(exc)) from None
        except _TRANSPORT_ERRORS as exc:
            detail = redact(str(exc), self._key)
            raise TransientError(f"gemini request failed: {type(exc).__name__} {detail}".strip()) from None
        except json.JSONDecodeError:
            raise TransientError("gemini answered with a body that is not JSON") from None
        except ValidationError as exc:  # a job or file record the SDK cannot read: ask again later
            detail = f"gemini answered with a body google-genai cannot read ({exc.error_count()} errors)"
            raise TransientError(detail) from None


def _until_pacific_midnight() -> float:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    now = datetime.now(ZoneInfo("America/Los_Angeles"))
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


def _retry_after(exc: errors.APIError) -> float | None:
    """Seconds to wait: until the daily quota resets when a QuotaFailure names a per-day quota (midnight
    Pacific time, as Gemini's requests-per-day quotas reset), else a Retry-After header, else the
    google.rpc.RetryInfo detail ("retryDelay": "7s")."""
    body = exc.details.get("error", exc.details) if isinstance(exc.details, dict) else None
    details = body.get("details") if isinstance(body, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            quotas = [str(v.get("quotaId", "")) for v in detail.get("violations") or [] if isinstance(v, dict)]
            if any("PerDay" in quota for quota in quotas):
                return _until_pacific_midnight()
    headers = getattr(exc.response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass  # Google sends seconds; a date form falls through to RetryInfo
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _RETRY_DELAY.fullmatch(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None
