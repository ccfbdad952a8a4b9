"""The HTTP face of the coach: `GET /health`, `POST /v1/coach`, and, in front of a vLLM server, its
OpenAI-compatible API for clients that bring their own prompt.

Requests that arrive together are coached together (one backend call per batch). A body that is not a
photo is a 422 with a one-line reason; a failure inside the model answers that request with a 500 and
the server goes on serving.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from pydantic import BaseModel, ConfigDict, Field

from motioncoach.labels.response import AnalysisResponse, error_response
from motioncoach.serving.coach import Coach, Coached, CoachRequest
from motioncoach.serving.photo import MAX_PHOTO_BYTES, PhotoError, decode_base64_image, read_photo

log = logging.getLogger(__name__)

MAX_BODY_BYTES = MAX_PHOTO_BYTES * 4 // 3 + 64 * 1024  # a photo at the limit, base64-encoded, and its JSON
FORWARDED = ("chat/completions", "completions", "models")  # vLLM's OpenAI-compatible routes


class CoachBody(BaseModel):
    """POST /v1/coach: a photo and the activity it shows."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, description="The photo: base64 (standard or URL-safe) or a data: URL.")
    activity: str = Field(min_length=1, max_length=100, description="The activity, e.g. 'squat' or 'warrior ii'.")


class Batcher:
    """Coaches requests in batches: what arrives within `wait_s` of a first request, up to `max_batch`,
    goes to the model in one call, on `workers` threads (one for an in-process model)."""

    def __init__(self, coach: Callable[[Sequence[CoachRequest]], list[Coached]], max_batch: int, wait_s: float,
                 workers: int = 1):  # fmt: skip
        self.coach, self.max_batch, self.wait_s = coach, max_batch, wait_s
        self.batches: list[int] = []  # sizes of the batches sent, oldest first (for /health and tests)
        self._queue: queue.Queue[tuple[CoachRequest, Future]] = queue.Queue()
        for number in range(workers):
            threading.Thread(target=self._work, name=f"coach-batcher-{number}", daemon=True).start()

    async def submit(self, request: CoachRequest) -> Coached:
        future: Future = Future()
        self._queue.put((request, future))
        return await asyncio.wrap_future(future)

    def _work(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            self.batches.append(len(batch))
            try:
                results = self.coach([request for request, _ in batch])
            except Exception as exc:  # noqa: BLE001 - one failed batch answers its requests, never the server
                log.exception("coaching a batch of %d failed", len(batch))
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)


def create_app(
    coach: Coach,
    *,
    model: str,
    max_batch: int = 8,
    wait_s: float = 0.05,
    workers: int = 1,
    token: str | None = None,
    upstream: str | None = None,
):
    """The FastAPI app. token: a bearer token every /v1 request must carry; upstream: a vLLM server's
    base URL whose OpenAI-compatible API is exposed under /v1 too."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    app = FastAPI(title="MotionCoach", description="Coaching feedback on a photo, as the MotionCoach app reads it.")
    batcher = Batcher(coach.coach, max_batch=max_batch, wait_s=wait_s, workers=workers)
    app.state.batcher = batcher

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return JSONResponse(status_code=422, content={"detail": f"{where}: {first.get('msg', 'invalid')}"})

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if request.url.path.startswith("/v1/") and token is not None:
            sent = request.headers.get("authorization", "")
            if not secrets.compare_digest(sent, f"Bearer {token}"):
                needed = {"detail": "a valid 'Authorization: Bearer' token is needed"}
                return JSONResponse(status_code=401, content=needed)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse(status_code=413, content={"detail": f"the body is over {MAX_BODY_BYTES} bytes"})
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": model, "backend": coach.backend.name}

    @app.post("/v1/coach", response_model=AnalysisResponse)
    async def coach_photo(body: CoachBody):
        try:
            photo = await asyncio.to_thread(read_photo, decode_base64_image(body.image), "photo")
        except PhotoError as exc:
            return JSONResponse(status_code=422, content={"detail": str(exc).removeprefix("photo: ")})
        try:
            result = await batcher.submit(CoachRequest(photo=photo, activity=body.activity.strip()))
        except Exception:  # noqa: BLE001 - logged by the batcher; the app gets the contract's error status
            failed = error_response("The coach failed on this photo; try again.")
            return JSONResponse(status_code=500, content=failed.model_dump(mode="json"))
        return result.response

    if upstream is not None:
        _forward_openai_api(app, upstream.rstrip("/"))
    return app


def _forward_openai_api(app, upstream: str) -> None:
    """Expose the vLLM server's OpenAI-compatible routes (streaming included) behind this app's auth."""
    import httpx
    from fastapi import Request
    from fastapi.responses import StreamingResponse

    client = httpx.AsyncClient(base_url=upstream, timeout=httpx.Timeout(900.0, connect=10.0))

    async def forward(request: Request, route: str):
        sent = client.build_request(
            request.method, f"/v1/{route}", content=await request.body(),
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )  # fmt: skip
        answer = await client.send(sent, stream=True)
        return StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code,
            media_type=answer.headers.get("content-type"), background=_closing(answer),
        )  # fmt: skip

    for route in FORWARDED:
        app.add_api_route(f"/v1/{route}", _bound(forward, route), methods=["GET", "POST"], include_in_schema=False)


def _bound(forward, route: str):
    from fastapi import Request

    async def handler(request: Request):
        return await forward(request, route)

    return handler


def _closing(answer):
    from starlette.background import BackgroundTask

    return BackgroundTask(answer.aclose)
