"""A fake OpenRouter: POST {base}/chat/completions with Bearer auth, answering OpenAI chat.completion JSON."""

from __future__ import annotations

import base64
import json
import time

from tests.fakes.server import ERROR_FAULTS, Call, FakeTeacherServer, Reply

_ERRORS = {
    "rate_limit": (429, "Rate limit exceeded: free-models-per-min."),
    "server_error": (500, "Internal Server Error"),
    "unavailable": (503, "No instances available for this model right now."),
    "bad_request": (400, "Provider returned error: invalid image data."),
    "no_credits": (402, "Insufficient credits. Add more using https://openrouter.ai/settings/credits"),
}


class OpenRouterFake(FakeTeacherServer):
    """Answers like openrouter.ai/api/v1 (base_path) for image + text chat requests.

    A request must ask for structured output as OpenRouter documents it: response_format json_schema
    with strict true and a closed schema (every object with additionalProperties false and all its
    properties required), and provider.require_parameters true so no provider may ignore it.
    usage carries OpenRouter's billed cost (usd_per_million) and cached prompt tokens. A 400
    ("bad_request") refuses the request and a 402 ("no_credits") the account. A 429 carries
    error.metadata.headers with X-RateLimit-Reset (ms epoch, retry_after from now) and, if
    retry_after_header, a Retry-After header. The answer's finish_reason is "stop", or
    "content_filter" with no content for the "blocked" fault.
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        base_path: str = "/api/v1",
        retry_after_header: bool = True,
        usd_per_million: tuple[float, float] = (0.5, 3.0),
        **knobs,
    ):
        super().__init__(api_key, **knobs)
        self.base_path = "/" + base_path.strip("/")
        self.retry_after_header = retry_after_header
        self.usd_per_million = usd_per_million  # what usage.cost bills per million input, output tokens
        self.last_completion: dict | None = None  # the body of the latest chat.completion answered

    @property
    def base_url(self) -> str:
        """What OPENROUTER_BASE_URL or base_url= should hold."""
        return self.root_url + self.base_path

    def route(self, method: str, path: str, headers, body: bytes) -> Reply:
        path = path.split("?", 1)[0]
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "No auth credentials found" if not headers.get("Authorization") else "User not found.")
        if method != "POST" or path != f"{self.base_path}/chat/completions":
            return _error(404, f"{method} {path} is not a route the fake knows.")
        request = self.last_request = json.loads(body)
        if problem := structured_output_problem(request):
            return _error(400, problem)
        call = self.register(*_unpack(request))
        fault = self.fault_for(call)
        self.wait(fault)
        if fault in ERROR_FAULTS:
            return self._fault_error(fault)
        completion = self.last_completion = self._completion(request["model"], call, fault)
        return Reply(200, completion)

    def _fault_error(self, fault: str) -> Reply:
        code, message = _ERRORS[fault]
        reply = _error(code, message)
        if fault == "rate_limit" and self.retry_after is not None:
            reset_ms = int((time.time() + self.retry_after) * 1000)
            limits = {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset_ms)}
            reply.body["error"]["metadata"] = {"headers": limits}
            if self.retry_after_header:
                reply.headers["Retry-After"] = f"{self.retry_after:g}"
        return reply

    def _completion(self, model: str, call: Call, fault: str | None) -> dict:
        text = self.answer_text(call, fault)
        blocked = fault == "blocked"
        prompt_tokens = 270 + len(call.prompt) // 4
        output_tokens = max(1, len(text) // 4)
        return {
            "id": f"gen-fake-{call.number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "provider": "Fake",
            "choices": [
                {
                    "index": 0,
                    "logprobs": None,
                    "finish_reason": "content_filter" if blocked else "stop",
                    "native_finish_reason": "SAFETY" if blocked else "STOP",
                    "message": {"role": "assistant", "content": None if blocked else text, "refusal": None},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": prompt_tokens + output_tokens,
                "cost": 0.0
                if model.endswith(":free")
                else (prompt_tokens * self.usd_per_million[0] + output_tokens * self.usd_per_million[1]) / 1e6,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }


def structured_output_problem(request: dict) -> str | None:
    """Why this chat request does not ask for strict structured output, or None."""
    response_format = request.get("response_format") or {}
    spec = response_format.get("json_schema") or {}
    if response_format.get("type") != "json_schema" or spec.get("strict") is not True or "schema" not in spec:
        return "response_format must be a strict json_schema"
    if (request.get("provider") or {}).get("require_parameters") is not True:
        return "provider.require_parameters must be true so that only providers honouring response_format answer"

    def open_object(node) -> bool:
        if isinstance(node, list):
            return any(open_object(n) for n in node)
        if not isinstance(node, dict):
            return False
        if node.get("type") == "object" and (
            node.get("additionalProperties") is not False
            or set(node.get("required", [])) != set(node.get("properties", {}))
        ):
            return True
        return any(open_object(v) for k, v in node.items() if k not in ("enum", "required"))

    if open_object(spec["schema"]):
        return "a strict json_schema needs additionalProperties false and every property required on each object"
    return None


def _unpack(request: dict) -> tuple[bytes, str, str]:
    """The data-URL image bytes, the user text and the system text of a chat request."""
    image, texts, system = b"", [], ""
    for message in request.get("messages", []):
        content = message.get("content")
        if message.get("role") == "system":
            system += content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
            continue
        for part in [{"type": "text", "text": content}] if isinstance(content, str) else content or []:
            if part.get("type") == "image_url":
                image += base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            elif part.get("type") == "text":
                texts.append(part["text"])
    return image, "\n".join(texts), system


def _error(code: int, message: str) -> Reply:
    return Reply(code, {"error": {"code": code, "message": message}})
