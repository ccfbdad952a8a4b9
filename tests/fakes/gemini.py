"""A fake Gemini Developer API: generateContent, the Batch API and the Files API, as google-genai calls them."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs

from PIL import Image

from tests.fakes.server import ERROR_FAULTS, Call, FakeTeacherServer, Reply

_GENERATE = re.compile(r"/models/([^/:]+):generateContent$")
_BATCH_CREATE = re.compile(r"/models/([^/:]+):batchGenerateContent$")
_BATCH_GET = re.compile(r"/batches/([^/:]+)$")
_BATCH_LIST = re.compile(r"/v1(?:beta|alpha)?/batches$")
_UPLOAD = re.compile(r"^/upload/[^/]+/files$")
_DOWNLOAD = re.compile(r"/files/([^/:]+):download$")
# Gemini's documented limits: an inlined batch (or any request) up to 20 MB, a file up to 2 GB.
REQUEST_LIMIT = 20_000_000
FILE_LIMIT = 2_000_000_000
# The JSON-Schema keywords Gemini documents for responseJsonSchema (ai.google.dev/gemini-api/docs/structured-output).
SCHEMA_KEYWORDS = frozenset(
    {
        "type", "title", "description", "properties", "required", "additionalProperties", "enum", "format",
        "minimum", "maximum", "items", "prefixItems", "minItems", "maxItems", "anyOf", "$ref", "$defs",
    }
)  # fmt: skip
_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1main."
_ERRORS = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "server_error": (500, "INTERNAL", "An internal error has occurred. Please retry or report it."),
    "unavailable": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "hang": (504, "DEADLINE_EXCEEDED", "Deadline exceeded."),
    "bad_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    # Gemini has no credit balance: a billing-disabled project answers 403.
    "no_credits": (403, "PERMISSION_DENIED", "This API method requires billing to be enabled."),
}
# A batch entry's error is a google.rpc.Status: its code is the google.rpc.Code, not the HTTP status.
RPC_CODES = {
    "RESOURCE_EXHAUSTED": 8,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DEADLINE_EXCEEDED": 4,
    "INVALID_ARGUMENT": 3,
    "PERMISSION_DENIED": 7,
}
# Gemini 3 bills an image at its media resolution (high by default); earlier models per 768 px tile.
MEDIA_RESOLUTION_TOKENS = {"MEDIA_RESOLUTION_LOW": 280, "MEDIA_RESOLUTION_MEDIUM": 560, "MEDIA_RESOLUTION_HIGH": 1120}
GEMINI3_IMAGE_TOKENS = 1120
# Implicit caching: a repeated prompt prefix of at least this many tokens is served from cache.
IMPLICIT_CACHE_MIN_TOKENS = 1024
TILE_TOKENS = 258
THINKING_LEVEL_REFUSED = "Thinking level is not supported for this model."
# Faults of batches.create: refused before the job exists, or answered with an error (or nothing,
# within the client's timeout) after the job was created.
CREATE_FAULTS = ("unavailable", "unavailable_after_create", "hang_after_create")
# Faults of reading a job (batches.get, the results download) or the list of jobs.
READ_FAULTS = {
    "unavailable": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "not_found": (404, "NOT_FOUND", "Requested entity was not found."),
    "permission_denied": (403, "PERMISSION_DENIED", "The caller does not have permission."),
}
# Fields the installed google-genai does not know (yet): the API adds fields as it grows, in any object.
UNKNOWN_FIELDS = {
    "response": {"serviceTier": "standard", "futureRouting": {"region": "us-central1"}},
    "candidate": {"futureCandidateScore": 0.5},
    "content": {"futureContentTag": "final"},
    "part": {"futurePartFlag": True},
    "usage": {"futureCachedTokenDetails": [{"modality": "TEXT", "tokenCount": 0}], "serviceTierTokenCount": 0},
    "job": {"priority": "0", "futureQueue": {"position": 0}},
}


class GeminiFake(FakeTeacherServer):
    """Answers like generativelanguage.googleapis.com under any base path and API version.

    A wrong x-goog-api-key gets Google's real answer, 400 API_KEY_INVALID; a missing one 403.
    A 429 carries RetryInfo {"retryDelay": "<retry_after>s"} and, if retry_after_header, a Retry-After header.
    Batches report RUNNING for batch_running_polls GETs, then batch_final_state with inlined responses,
    or, for a job whose input was a JSONL file, a responses file to download.

    As strict as the service: a request body over 20 MB is refused (the inline batch limit), as is a
    response schema with a keyword Gemini does not document, a doubled "models/" in the path, and a
    thinking level sent to a model before Gemini 3 (400 "Thinking level is not supported for this
    model"). The Files API speaks Google's resumable upload protocol (start, then upload chunks at
    the right offsets, then finalize) and serves only files the service generated (batch results).

    As the service answers: every response carries fields the installed SDK does not know
    (unknown_fields), an image costs what the model bills for it (1,120 tokens on Gemini 3, 258 a
    tile before) plus a token per 4 characters of text, batch entry errors carry google.rpc codes,
    batches.list pages through the jobs newest first, and batch_create_faults can make a create fail
    after the job was created; batch_read_faults and batch_list_faults fail reads of jobs and lists.
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        retry_after_header: bool = True,
        thoughts_tokens: int = 7,
        batch_running_polls: int = 1,
        batch_final_state: str = "BATCH_STATE_SUCCEEDED",
        batch_create_faults: list[str | None] | None = None,
        batch_read_faults: list[str | None] | None = None,
        batch_list_faults: list[str | None] | None = None,
        unknown_fields: bool = True,
        echo_keys: bool = True,
        respond: Callable[[Call, dict], dict | str] | None = None,
        queued_token_limit: int | None = None,
        **knobs,
    ):
        super().__init__(api_key, **knobs)
        self.retry_after_header = retry_after_header
        self.thoughts_tokens = thoughts_tokens
        self.batch_running_polls = batch_running_polls
        self.batch_final_state = batch_final_state
        self.batch_create_faults = list(batch_create_faults or [])  # consumed one per batches.create call
        self.batch_read_faults = list(batch_read_faults or [])  # one per batches.get or results download
        self.batch_list_faults = list(batch_list_faults or [])  # one per batches.list page
        self.unknown_fields = unknown_fields
        self.echo_keys = echo_keys  # False: batch entries carry no key or metadata, only their order
        self.queued_token_limit = queued_token_limit  # the tier's input tokens in running jobs; None: no limit
        self.max_queued_tokens = 0  # the most input tokens running jobs held at once
        self.respond = respond  # rewrites an answer's body (a dict, or raw text online) before it is sent
        self.last_response: dict | str | None = None  # the body of the latest generateContent answer
        self.batch_creates = 0  # batches.create calls, failed ones included
        self.jobs_created = 0
        self.batch_lists = 0  # batches.list pages served
        self.arrivals: list[float] = []  # time.monotonic() of every generateContent request, in arrival order
        self.batches: dict[str, dict] = {}
        self.files: dict[str, dict] = {}  # name -> {"data": bytes, "generated": bool, "meta": dict}
        self.uploads: dict[str, dict] = {}  # upload id -> {"size": declared, "data": bytearray, "meta": dict}
        self.batch_request_bytes: list[int] = []  # body size of every batchGenerateContent request
        self._prefixes_seen: set[str] = set()  # system instructions already answered (implicitly cached)
        self._batch_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """What GOOGLE_GEMINI_BASE_URL or HttpOptions(base_url=...) should hold."""
        return self.root_url + "/"

    def route(self, method: str, path: str, headers, body: bytes) -> Reply:
        path, _, query = path.partition("?")
        upload_id = parse_qs(query).get("upload_id", [None])[0]
        if method == "POST" and _UPLOAD.search(path) and upload_id:  # the session URL is the credential
            return self._upload_chunk(upload_id, headers, body)
        key = headers.get("x-goog-api-key")
        if key is None:
            return _error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (no API key).")
        if key != self.api_key:
            return _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
        if method == "POST" and _BATCH_CREATE.search(path):
            with self._batch_lock:
                self.batch_request_bytes.append(len(body))
        if len(body) > REQUEST_LIMIT:
            return _error(400, "INVALID_ARGUMENT", f"Request payload size exceeds the limit: {REQUEST_LIMIT} bytes.")
        if "/models/models/" in path:
            return _error(404, "NOT_FOUND", f"models/{path.split('/models/models/')[1]} is not found.")
        if method == "POST" and (match := _GENERATE.search(path)):
            with self._batch_lock:
                self.arrivals.append(time.monotonic())
            self.last_request = json.loads(body)
            if problem := schema_problem(self.last_request) or thinking_problem(match.group(1), self.last_request):
                return _error(400, "INVALID_ARGUMENT", problem)
            return self._generate(match.group(1), self.last_request)
        if method == "POST" and (match := _BATCH_CREATE.search(path)):
            return self._create_batch(match.group(1), json.loads(body))
        if method == "GET" and _BATCH_LIST.search(path):
            return self._read_fault(self.batch_list_faults) or self._list_batches(parse_qs(query))
        if method == "GET" and (_BATCH_GET.search(path) or _DOWNLOAD.search(path)):
            if fault := self._read_fault(self.batch_read_faults):
                return fault
        if method == "GET" and (match := _BATCH_GET.search(path)):
            return self._get_batch(f"batches/{match.group(1)}")
        if method == "POST" and _UPLOAD.search(path):
            return self._start_upload(headers, json.loads(body or b"{}"))
        if method == "GET" and (match := _DOWNLOAD.search(path)):
            return self._download(f"files/{match.group(1)}")
        return _error(404, "NOT_FOUND", f"{method} {path} is not a method the fake knows.")

    def _generate(self, model: str, request: dict) -> Reply:
        image, prompt, system = _unpack(request)
        call = self.register(image, prompt, system)
        fault = self.fault_for(call)
        self.wait(fault)
        if fault in ERROR_FAULTS:
            return self._fault_error(fault)
        response = self.last_response = self._response(model, call, fault, image, request)
        return Reply(200, response.encode() if isinstance(response, str) else response)

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

    def _implicitly_cached(self, system: str) -> int:
        """Tokens of a system instruction the service has answered before, once it is long enough to cache."""
        tokens = len(system) // 4
        with self._batch_lock:
            seen = system in self._prefixes_seen
            self._prefixes_seen.add(system)
        return tokens if seen and tokens >= IMPLICIT_CACHE_MIN_TOKENS else 0

    def _response(self, model: str, call: Call, fault: str | None, image: bytes, request: dict) -> dict | str:
        text = self.answer_text(call, fault)
        if fault == "blocked":
            candidate = {"finishReason": "SAFETY", "index": 0}
        else:
            part = {"text": text} | (UNKNOWN_FIELDS["part"] if self.unknown_fields else {})
            content = {"parts": [part], "role": "model"} | (UNKNOWN_FIELDS["content"] if self.unknown_fields else {})
            candidate = {"content": content, "finishReason": "STOP", "index": 0}
        image = image_tokens(model, image, request)
        prompt_tokens = image + (len(call.system) + len(call.prompt)) // 4
        output_tokens = max(1, len(text) // 4)
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "thoughtsTokenCount": self.thoughts_tokens,
            "totalTokenCount": prompt_tokens + output_tokens + self.thoughts_tokens,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": prompt_tokens - image},
                {"modality": "IMAGE", "tokenCount": image},
            ],
        }
        if cached := self._implicitly_cached(call.system):
            usage["cachedContentTokenCount"] = cached
        response = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}
        response["responseId"] = str(call.number)
        if self.unknown_fields:
            candidate |= UNKNOWN_FIELDS["candidate"]
            usage |= UNKNOWN_FIELDS["usage"]
            response |= UNKNOWN_FIELDS["response"]
        return self.respond(call, response) if self.respond else response

    def _create_batch(self, model: str, body: dict) -> Reply:
        with self._batch_lock:
            self.batch_creates += 1
            fault = self.batch_create_faults.pop(0) if self.batch_create_faults else None
        if fault is not None and fault not in CREATE_FAULTS:
            raise ValueError(f"unknown batch create fault {fault!r}; choose from {CREATE_FAULTS}")
        if fault == "unavailable":
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
        reply = self._create_job(model, body)
        if fault == "unavailable_after_create" and reply.status == 200:
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
        if fault == "hang_after_create" and reply.status == 200:
            self._closing.wait(self.hang_s)
        return reply

    def _create_job(self, model: str, body: dict) -> Reply:
        batch = body["batch"]
        source = batch["inputConfig"]
        if "fileName" in source:
            with self._batch_lock:
                file = self.files.get(source["fileName"])
            if file is None:
                return _error(404, "NOT_FOUND", f"File {source['fileName']} not found.")
            items = [json.loads(line) for line in file["data"].decode("utf-8").splitlines() if line.strip()]
        else:
            items = source["requests"]["requests"]
        for item in items:
            if problem := schema_problem(item["request"]):
                return _error(400, "INVALID_ARGUMENT", problem)
        tokens = 0
        for item in items:
            image, prompt, system = _unpack(item["request"])
            tokens += image_tokens(model, image, item["request"]) + (len(system) + len(prompt)) // 4
        with self._batch_lock:
            # A job holds its tokens until a read has seen it end.
            queued = tokens + sum(j["tokens"] for j in self.batches.values() if j["polls"] <= self.batch_running_polls)
            if self.queued_token_limit is not None and queued > self.queued_token_limit:
                return _error(429, "RESOURCE_EXHAUSTED", f"Enqueued token limit exceeded: {queued} tokens in running "
                              f"batch jobs, over the tier's {self.queued_token_limit}.")  # fmt: skip
            self.max_queued_tokens = max(self.max_queued_tokens, queued)
        entries = []
        for item in items:
            image, prompt, system = _unpack(item["request"])
            call = self.register(image, prompt, system)
            fault = self.fault_for(call)  # no waiting: the job runs in the background
            if refused := thinking_problem(model, item["request"]):
                entry = {"error": {"code": RPC_CODES["INVALID_ARGUMENT"], "message": refused}}
            elif fault in (*ERROR_FAULTS, "hang"):
                _, status, message = _ERRORS[fault]
                entry = {"error": {"code": RPC_CODES[status], "message": message}}
            else:
                entry = {"response": self._response(model, call, fault, image, item["request"])}
            if not self.echo_keys:
                entries.append(entry)
            elif "fileName" in source:  # file lines carry a key; inlined requests echo their metadata
                entries.append({"key": item["key"], **entry} if "key" in item else entry)
            else:
                entries.append(entry | ({"metadata": item["metadata"]} if "metadata" in item else {}))
        with self._batch_lock:
            self.jobs_created += 1  # names are never reused, also after a job is deleted
            name = f"batches/fake{self.jobs_created}"
            job = {
                "model": f"models/{model}",
                "displayName": batch.get("displayName", ""),
                "createTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "polls": 0,
                "responses": entries,
                "tokens": tokens,
            }
            if "fileName" in source:
                output = f"files/batch-fake{self.jobs_created}-results"
                lines = "".join(json.dumps(entry) + "\n" for entry in entries).encode()
                self.files[output] = {"data": lines, "generated": True, "meta": {"mimeType": "application/jsonl"}}
                job["responsesFile"] = output
            self.batches[name] = job
        return Reply(200, self._operation(name, "BATCH_STATE_PENDING"))

    def _start_upload(self, headers, body: dict) -> Reply:
        """Start of a resumable upload: the declared size and metadata in, the session URL out."""
        if (headers.get("X-Goog-Upload-Protocol"), headers.get("X-Goog-Upload-Command")) != ("resumable", "start"):
            return _error(400, "INVALID_ARGUMENT", "An upload starts with protocol resumable and command start.")
        size = int(headers.get("X-Goog-Upload-Header-Content-Length") or -1)
        if not 0 < size <= FILE_LIMIT:
            return _error(400, "INVALID_ARGUMENT", f"File size {size} is outside 1 byte to {FILE_LIMIT} bytes.")
        with self._batch_lock:
            upload_id = f"up{len(self.uploads) + 1}"
            self.uploads[upload_id] = {"size": size, "data": bytearray(), "meta": body.get("file") or {}}
        url = f"{self.root_url}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable"
        return Reply(200, {}, {"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})

    def _upload_chunk(self, upload_id: str, headers, body: bytes) -> Reply:
        with self._batch_lock:
            upload = self.uploads.get(upload_id)
            if upload is None:
                return _error(404, "NOT_FOUND", "No such upload session.")
            commands = {c.strip() for c in (headers.get("X-Goog-Upload-Command") or "").split(",")}
            if int(headers.get("X-Goog-Upload-Offset") or -1) != len(upload["data"]):
                return _error(400, "INVALID_ARGUMENT", f"Upload offset must be {len(upload['data'])}.")
            if "upload" in commands:
                upload["data"] += body
            if len(upload["data"]) > upload["size"]:
                return _error(400, "INVALID_ARGUMENT", "More bytes than the upload declared.")
            if "finalize" not in commands:
                return Reply(200, {}, {"X-Goog-Upload-Status": "active"})
            if len(upload["data"]) != upload["size"]:
                return _error(400, "INVALID_ARGUMENT", "Finalized before all declared bytes arrived.")
            name = f"files/fake-{upload_id}"
            meta = {
                "name": name,
                "displayName": upload["meta"].get("displayName", ""),
                "mimeType": upload["meta"].get("mimeType", "application/octet-stream"),
                "sizeBytes": str(upload["size"]),
                "state": "ACTIVE",
                "source": "UPLOADED",
                "uri": f"{self.root_url}/v1beta/{name}",
            }
            self.files[name] = {"data": bytes(upload["data"]), "generated": False, "meta": meta}
            del self.uploads[upload_id]
        return Reply(200, {"file": meta}, {"X-Goog-Upload-Status": "final"})

    def _download(self, name: str) -> Reply:
        with self._batch_lock:
            file = self.files.get(name)
        if file is None:
            return _error(404, "NOT_FOUND", f"File {name} not found.")
        if not file["generated"]:
            return _error(400, "INVALID_ARGUMENT", "Only generated files can be downloaded.")
        return Reply(200, file["data"], {"Content-Type": "application/octet-stream"})

    def _get_batch(self, name: str) -> Reply:
        with self._batch_lock:
            job = self.batches.get(name)
            if job is None:
                return _error(404, "NOT_FOUND", f"Batch {name} not found.")
            job["polls"] += 1
            running = job["polls"] <= self.batch_running_polls
        return Reply(200, self._operation(name, "BATCH_STATE_RUNNING" if running else self.batch_final_state))

    def _read_fault(self, faults: list[str | None]) -> Reply | None:
        with self._batch_lock:
            fault = faults.pop(0) if faults else None
        if fault is None:
            return None
        if fault not in READ_FAULTS:
            raise ValueError(f"unknown read fault {fault!r}; choose from {tuple(READ_FAULTS)}")
        return _error(*READ_FAULTS[fault])

    def _list_batches(self, query: dict) -> Reply:
        """batches.list: pages of operations, newest job first, each in its current state (polls not counted)."""
        size = int(query.get("pageSize", ["50"])[0])
        start = int(query.get("pageToken", ["0"])[0] or 0)
        with self._batch_lock:
            self.batch_lists += 1
            names = list(reversed(self.batches))
            page = names[start : start + size]
            states = {n: self._state(n) for n in page}
        body: dict = {"operations": [self._operation(n, states[n]) for n in page]}
        if start + size < len(names):
            body["nextPageToken"] = str(start + size)
        return Reply(200, body)

    def _state(self, name: str) -> str:
        job = self.batches[name]
        return "BATCH_STATE_RUNNING" if job["polls"] < self.batch_running_polls else self.batch_final_state

    def _operation(self, name: str, state: str) -> dict:
        """A batch as the API returns it: a long-running operation whose metadata is the batch."""
        job = self.batches.get(name) or {}
        count = len(job.get("responses", []))
        failed = sum(1 for entry in job.get("responses", []) if "error" in entry)
        done = state == "BATCH_STATE_SUCCEEDED"
        metadata = {
            "@type": _TYPES + "GenerateContentBatch",
            "name": name,
            "model": job.get("model"),
            "displayName": job.get("displayName"),
            "createTime": job.get("createTime"),
            "state": state,
            "batchStats": {
                "requestCount": str(count),
                "successfulRequestCount": str(count - failed if done else 0),
                "failedRequestCount": str(failed if done else 0),
                "pendingRequestCount": str(0 if done else count),
            },
        }
        if self.unknown_fields:
            metadata |= UNKNOWN_FIELDS["job"]
        operation: dict = {"name": name, "metadata": metadata}
        if state == "BATCH_STATE_SUCCEEDED":
            if "responsesFile" in job:
                output = {"responsesFile": job["responsesFile"]}
            else:
                output = {"inlinedResponses": {"inlinedResponses": job.get("responses", [])}}
            metadata["output"] = output
            operation |= {"done": True, "response": {"@type": _TYPES + "GenerateContentBatchOutput", **output}}
        elif state in ("BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"):
            operation["done"] = True
        return operation


def schema_problem(request: dict) -> str | None:
    """The first JSON-Schema keyword of the request's responseJsonSchema that Gemini does not document."""
    schema = (request.get("generationConfig") or {}).get("responseJsonSchema")

    def walk(node, where: str) -> str | None:
        if isinstance(node, list):
            return next((p for i, n in enumerate(node) if (p := walk(n, f"{where}[{i}]"))), None)
        if not isinstance(node, dict):
            return None
        for key, value in node.items():
            if key not in SCHEMA_KEYWORDS:
                return f"responseJsonSchema{where}: keyword {key!r} is not supported."
            children = value.items() if key in ("properties", "$defs") else [("", value)]
            for name, child in children:
                if key in ("properties", "$defs", "items", "anyOf", "prefixItems", "additionalProperties"):
                    if problem := walk(child, f"{where}.{key}{'.' + name if name else ''}"):
                        return problem
        return None

    return walk(schema, "") if schema is not None else None


def thinking_problem(model: str, request: dict) -> str | None:
    """Why Gemini refuses the request's thinking settings for this model, or None."""
    thinking = (request.get("generationConfig") or {}).get("thinkingConfig") or {}
    level = thinking.get("thinkingLevel", thinking.get("thinking_level"))
    budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
    generation = model.removeprefix("gemini-").split("-", 1)[0]
    if generation.startswith("2.5"):
        if level is not None:
            return THINKING_LEVEL_REFUSED
        if budget == 0 and "pro" in model:
            return "Budget 0 is invalid. This model only works in thinking mode."
    elif generation.startswith(("1", "2")) and (level is not None or budget is not None):
        return "Thinking is not supported for this model."
    return None


def image_tokens(model: str, image: bytes, request: dict) -> int:
    """What the model bills for the request's image: Gemini 3 at its media resolution, earlier models per tile."""
    if not image:
        return 0
    if model.startswith("gemini-3"):
        resolution = (request.get("generationConfig") or {}).get("mediaResolution")
        return MEDIA_RESOLUTION_TOKENS.get(resolution, GEMINI3_IMAGE_TOKENS)
    with Image.open(io.BytesIO(image)) as opened:
        width, height = opened.size
    if width <= 384 and height <= 384:
        return TILE_TOKENS
    unit = max(1, math.floor(min(width, height) / 1.5))
    return TILE_TOKENS * math.ceil(width / unit) * math.ceil(height / unit)


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
