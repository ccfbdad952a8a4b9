"""A fake Gemini Developer API: generateContent and the inlined Batch API, as google-genai calls them."""

from __future__ import annotations

import base64
import json
import re
import threading
from datetime import UTC, datetime

from tests.fakes.server import ERROR_FAULTS, Call, FakeTeacherServer, Reply

_GENERATE = re.compile(r"/models/([^/:]+):generateContent$")
_BATCH_CREATE = re.compile(r"/models/([^/:]+):batchGenerateContent$")
_BATCH_GET = re.compile(r"/batches/([^/:]+)$")
_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1main."
_ERRORS = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "server_error": (500, "INTERNAL", "An internal error has occurred. Please retry or report it."),
    "unavailable": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "hang": (504, "DEADLINE_EXCEEDED", "Deadline exceeded."),
}


class GeminiFake(FakeTeacherServer):
    """Answers like generativelanguage.googleapis.com under any base path and API version.

    A wrong x-goog-api-key gets Google's real answer, 400 API_KEY_INVALID; a missing one 403.
    A 429 carries RetryInfo {"retryDelay": "<retry_after>s"} and, if retry_after_header, a Retry-After header.
    Batches report RUNNING for batch_running_polls GETs, then batch_final_state with inlined responses.
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        retry_after_header: bool = True,
        thoughts_tokens: int = 7,
        batch_running_polls: int = 1,
        batch_final_state: str = "BATCH_STATE_SUCCEEDED",
        **knobs,
    ):
        super().__init__(api_key, **knobs)
        self.retry_after_header = retry_after_header
        self.thoughts_tokens = thoughts_tokens
        self.batch_running_polls = batch_running_polls
        self.batch_final_state = batch_final_state
        self.batches: dict[str, dict] = {}
        self._batch_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """What GOOGLE_GEMINI_BASE_URL or HttpOptions(base_url=...) should hold."""
        return self.root_url + "/"

    def route(self, method: str, path: str, headers, body: bytes) -> Reply:
        path = path.split("?", 1)[0]
        key = headers.get("x-goog-api-key")
        if key is None:
            return _error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (no API key).")
        if key != self.api_key:
            return _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
        if method == "POST" and (match := _GENERATE.search(path)):
            self.last_request = json.loads(body)
            return self._generate(match.group(1), self.last_request)
        if method == "POST" and (match := _BATCH_CREATE.search(path)):
            return self._create_batch(match.group(1), json.loads(body))
        if method == "GET" and (match := _BATCH_GET.search(path)):
            return self._get_batch(f"batches/{match.group(1)}")
        return _error(404, "NOT_FOUND", f"{method} {path} is not a method the fake knows.")

    def _generate(self, model: str, request: dict) -> Reply:
        call = self.register(*_unpack(request))
        fault = self.fault_for(call)
        self.wait(fault)
        if fault in ERROR_FAULTS:
            return self._fault_error(fault)
        return Reply(200, self._response(model, call, fault))

    def _fault_error(self, fault: str) -> Reply:
        code, status, message = _ERRORS[fault]
        if fault != "rate_limit" or self.retry_after is None:
            return _error(code, status, message)
        reply = _error(code, status, message)
        retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{self.retry_after:g}s"}
        reply.body["error"]["details"] = [retry_info]
        if self.retry_after_header:
            reply.headers["Retry-After"] = f"{self.retry_after:g}"
        return reply

    def _response(self, model: str, call: Call, fault: str | None) -> dict:
        text = self.answer_text(call, fault)
        if fault == "blocked":
            candidate = {"finishReason": "SAFETY", "index": 0}
        else:
            candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}
        prompt_tokens = 258 + len(call.prompt) // 4  # Gemini counts an image up to 768 px as 258 tokens
        output_tokens = max(1, len(text) // 4)
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "thoughtsTokenCount": self.thoughts_tokens,
            "totalTokenCount": prompt_tokens + output_tokens + self.thoughts_tokens,
        }
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": str(call.number),
        }

    def _create_batch(self, model: str, body: dict) -> Reply:
        batch = body["batch"]
        entries = []
        for item in batch["inputConfig"]["requests"]["requests"]:
            call = self.register(*_unpack(item["request"]))
            fault = self.fault_for(call)  # no waiting: the job runs in the background
            if fault in (*ERROR_FAULTS, "hang"):
                code, _, message = _ERRORS[fault]
                entry = {"error": {"code": code, "message": message}}
            else:
                entry = {"response": self._response(model, call, fault)}
            entries.append(entry | ({"metadata": item["metadata"]} if "metadata" in item else {}))
        with self._batch_lock:
            name = f"batches/fake{len(self.batches) + 1}"
            self.batches[name] = {
                "model": f"models/{model}",
                "displayName": batch.get("displayName", ""),
                "createTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "polls": 0,
                "responses": entries,
            }
        return Reply(200, self._operation(name, "BATCH_STATE_PENDING"))

    def _get_batch(self, name: str) -> Reply:
        with self._batch_lock:
            job = self.batches.get(name)
            if job is None:
                return _error(404, "NOT_FOUND", f"Batch {name} not found.")
            job["polls"] += 1
            running = job["polls"] <= self.batch_running_polls
        return Reply(200, self._operation(name, "BATCH_STATE_RUNNING" if running else self.batch_final_state))

    def _operation(self, name: str, state: str) -> dict:
        """A batch as the API returns it: a long-running operation whose metadata is the batch."""
        job = self.batches.get(name) or {}
        metadata = {
            "@type": _TYPES + "GenerateContentBatch",
            "name": name,
            "model": job.get("model"),
            "displayName": job.get("displayName"),
            "createTime": job.get("createTime"),
            "state": state,
        }
        operation: dict = {"name": name, "metadata": metadata}
        if state == "BATCH_STATE_SUCCEEDED":
            output = {"inlinedResponses": {"inlinedResponses": job.get("responses", [])}}
            metadata["output"] = output
            operation |= {"done": True, "response": {"@type": _TYPES + "GenerateContentBatchOutput", **output}}
        elif state in ("BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"):
            operation["done"] = True
        return operation


def _unpack(request: dict) -> tuple[bytes, str, str]:
    """The inline image bytes, the user text and the system text of a generateContent body."""
    image, texts = b"", []
    for content in request.get("contents", []):
        for part in content.get("parts", []):
            if "inlineData" in part:
                data = part["inlineData"]["data"]
                image += base64.urlsafe_b64decode(data.translate(str.maketrans("+/", "-_")) + "=" * (-len(data) % 4))
            elif "text" in part:
                texts.append(part["text"])
    system = "".join(p.get("text", "") for p in (request.get("systemInstruction") or {}).get("parts", []))
    return image, "\n".join(texts), system


def _error(code: int, status: str, message: str, reason: str | None = None) -> Reply:
    error: dict = {"code": code, "message": message, "status": status}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return Reply(code, {"error": error})
