"""A stand-in for `vllm serve` (vLLM 0.33's OpenAI-compatible server) on 127.0.0.1, so the real OpenAI SDK,
our proxy and our backend run against the protocol.

As strict as the server it stands in for: one served model name (404 NotFoundError for another), at most
`max_images` images per prompt, images as base64 data URLs that must decode, the context checked (prompt
tokens, ~1 per 4 characters plus one per 32 x 32 pixels of each image, and max_tokens, against
max_model_len: 400 as vLLM words it), `--api-key` (401 {"error": "Unauthorized"}), and streaming as
server-sent events of chat.completion.chunk objects in a chunked body, ending with `data: [DONE]`.
The answer is a grounded label for the prompt's keypoints unless `answer` says otherwise; `hold` (an
Event) keeps answers back until it is set, for tests of what happens while the model is busy.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from tests.fakes.server import grounded_label

PIXELS_PER_TOKEN = 32 * 32


@dataclass
class ChatCall:
    """One chat completion as the stand-in received it."""

    model: str
    system: str
    user: str
    image_sizes: list[tuple[int, int]]
    stream: bool
    body: dict


@dataclass
class OpenAIChatFake:
    served_model: str = "motioncoach"
    root: str = "/data/merged/run-1"  # what /v1/models says the model was loaded from
    api_key: str | None = None
    max_model_len: int = 8192
    max_images: int = 1
    answer: Callable[[ChatCall], str] | None = None
    hold: threading.Event | None = None
    calls: list[ChatCall] = field(default_factory=list)
    waiting: int = 0  # answers held back by `hold` right now
    host: str = "127.0.0.1"
    port: int = 0
    _httpd: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __enter__(self) -> OpenAIChatFake:
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.fake = self
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def serve_forever(self) -> None:
        """Serve on host:port in this thread (as a `vllm serve` process does)."""
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.fake = self
        self._httpd.serve_forever(poll_interval=0.05)

    @property
    def root_url(self) -> str:
        assert self._httpd is not None, "use the fake as a context manager"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    # --- the protocol ------------------------------------------------------------------------------

    def route(self, method: str, path: str, headers, body: bytes):
        """(status, JSON body) for a plain answer, or (200, iterator of SSE lines) for a stream."""
        path = path.split("?", 1)[0]
        if path == "/health" and method == "GET":
            return 200, b""
        if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"error": "Unauthorized"}
        if path == "/v1/models" and method == "GET":
            model = {"id": self.served_model, "object": "model", "created": int(time.time()), "owned_by": "vllm",
                     "root": self.root, "parent": None, "max_model_len": self.max_model_len}  # fmt: skip
            return 200, {"object": "list", "data": [model]}
        if path == "/v1/chat/completions" and method == "POST":
            return self._chat(body)
        return 404, {"detail": "Not Found"}  # FastAPI's own 404, as vLLM's app answers unknown routes

    def _chat(self, body: bytes):
        try:
            request = json.loads(body)
        except ValueError as exc:
            return _error(400, f"Invalid JSON: {exc}", "BadRequestError")
        if request.get("model") != self.served_model:
            return _error(404, f"The model `{request.get('model')}` does not exist.", "NotFoundError", "model")
        try:
            call = self._read(request)
        except ValueError as exc:
            return _error(400, str(exc), "BadRequestError")
        max_tokens = int(request.get("max_tokens") or request.get("max_completion_tokens") or 16)
        prompt_tokens = math.ceil((len(call.system) + len(call.user)) / 4) + sum(
            math.ceil(w / 32) * math.ceil(h / 32) for w, h in call.image_sizes
        )
        if prompt_tokens + max_tokens > self.max_model_len:
            asked = (
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion)"
            )
            return _error(400, (
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested {asked}. "
                "Please reduce the length of the messages or completion."
            ), "BadRequestError")  # fmt: skip
        with self._lock:
            self.calls.append(call)
        if self.hold is not None:
            with self._lock:
                self.waiting += 1
            self.hold.wait()
            with self._lock:
                self.waiting -= 1
        text = self.answer(call) if self.answer else self._grounded(call)
        if call.stream:
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
            return 200, _chunks(request["model"], text, usage, prompt_tokens)
        return 200, {
            "id": f"chatcmpl-fake-{len(self.calls)}", "object": "chat.completion", "created": int(time.time()),
            "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": []},
                         "logprobs": None, "finish_reason": "stop", "stop_reason": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": max(1, len(text) // 4),
                      "total_tokens": prompt_tokens + max(1, len(text) // 4)},
        }  # fmt: skip

    def _read(self, request: dict) -> ChatCall:
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages: Field required (a non-empty list)")
        system, texts, sizes = "", [], []
        for message in messages:
            role, content = message.get("role"), message.get("content")
            if role not in ("system", "user", "assistant"):
                raise ValueError(f"messages: unknown role {role!r}")
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(parts, list):
                raise ValueError("messages: content must be a string or a list of parts")
            for part in parts:
                if part.get("type") == "text" and role == "system":
                    system += part["text"]
                elif part.get("type") == "text":
                    texts.append(part["text"])
                elif part.get("type") == "image_url":
                    sizes.append(_image_size(part.get("image_url", {}).get("url", "")))
                else:
                    raise ValueError(f"messages: unknown content part type {part.get('type')!r}")
        if len(sizes) > self.max_images:
            raise ValueError(f"At most {self.max_images} image(s) may be provided in one prompt.")
        return ChatCall(request["model"], system, "\n".join(texts), sizes, bool(request.get("stream")), request)

    @staticmethod
    def _grounded(call: ChatCall) -> str:
        size = f"Photo: {call.image_sizes[0][0]}x{call.image_sizes[0][1]} pixels\n" if call.image_sizes else ""
        return grounded_label(size + call.user).to_json()


def _image_size(url: str) -> tuple[int, int]:
    if not url.startswith("data:image/") or ";base64," not in url:
        raise ValueError("Only base64 data URLs of images are accepted here (no fetching of URLs).")
    try:
        data = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.size
    except (binascii.Error, OSError) as exc:
        raise ValueError(f"Failed to load the image: {exc}") from None


def _chunks(model: str, text: str, usage: bool, prompt_tokens: int):
    created, name = int(time.time()), "chatcmpl-fake-stream"

    def chunk(delta: dict, finish: str | None = None) -> str:
        body = {"id": name, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for start in range(0, len(text), 40):
        yield chunk({"content": text[start : start + 40]})
    yield chunk({}, "stop")
    if usage:
        tokens = max(1, len(text) // 4)
        body = {"id": name, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                          "total_tokens": prompt_tokens + tokens}}  # fmt: skip
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


def _error(code: int, message: str, kind: str, param: str | None = None):
    return code, {"error": {"message": message, "type": kind, "param": param, "code": code}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128
    fake: OpenAIChatFake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, reply = self.server.fake.route(method, self.path, self.headers, body)
        try:
            self.send_response(status)
            if isinstance(reply, dict | bytes):
                payload = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in reply:
                data = line.encode()
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args) -> None:
        pass
