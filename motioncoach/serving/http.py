"""The HTTP face of the coach, the same for `motioncoach serve` and the Modal endpoint:

- `GET /health`: the release served and whether its model server answers (open without the token);
- `POST /v1/coach`: `{"image": base64 or data: URL, "activity": ...}` -> AnalysisResponse;
- `POST /` and `/analyze`: the MotionCoach app's multipart form -> AnalysisResponse, always HTTP 200;
- `GET /metrics`: Prometheus counters;
- `/v1/models`, `/v1/chat/completions`, `/v1/completions`: the upstream OpenAI-compatible server's own API.

A photo that needs no model call is answered at once; the others wait in a bounded queue (429 with
Retry-After when it is full) and each request has a deadline below Modal's request timeout. A body that is
not a photo is a 422 with a one-line reason; a failure inside the model answers that request and the server
goes on serving. Every answer carries its request id (X-Request-ID), which the log lines name.
"""

# No `from __future__ import annotations` in this module: FastAPI reads the handlers' annotations to inject
# `Request` and to validate the body, and string annotations of names imported inside create_app would not
# resolve (FastAPI then takes `request` for a query parameter: 422 on every call).

import asyncio
import logging
import math
import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from motioncoach.labels.response import AnalysisResponse, error_response
from motioncoach.serving.app_route import APP_PATHS, MAX_UPLOAD_BYTES, add_app_route, upload_too_large
from motioncoach.serving.batcher import Busy, Expired
from motioncoach.serving.coach import Coach, CoachRequest
from motioncoach.serving.door import FrontDoor
from motioncoach.serving.metrics import Metrics
from motioncoach.serving.photo import MAX_PHOTO_BYTES, PhotoError, decode_base64_image, read_photo
from motioncoach.serving.service import CoachService

log = logging.getLogger(__name__)

MAX_BODY_BYTES = MAX_PHOTO_BYTES * 4 // 3 + 64 * 1024  # a photo at the limit, base64-encoded, and its JSON
# The Modal endpoint's request timeout is 600 s (its `timeout=10 * MINUTES`); a request ends before Modal ends it.
REQUEST_DEADLINE_S = 540.0

Activity = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class CoachBody(BaseModel):
    """POST /v1/coach: a photo and the activity it shows."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, description="The photo: base64 (standard or URL-safe) or a data: URL.")
    activity: Activity = Field(description="The activity, e.g. 'squat' or 'warrior ii' (spaces around are dropped).")


def create_app(
    coach: Coach,
    *,
    release: str,
    max_batch: int = 8,
    wait_s: float = 0.05,
    workers: int = 1,
    max_queue: int = 64,
    deadline_s: float = REQUEST_DEADLINE_S,
    token: str | None = None,
    upstream: str | None = None,
    upstream_key: str | None = None,
):
    """The FastAPI app. release: what /health reports as served (a volume path, a Hub id, a folder); token:
    the bearer token every route but /health needs; upstream: the root URL of the OpenAI-compatible server
    the backend talks to, whose API is exposed under /v1 and asked by /health (upstream_key: its own key)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response

    app = FastAPI(title="MotionCoach", description="Coaching feedback on a photo, as the MotionCoach app reads it.")
    metrics = Metrics(queue_depth=lambda: service.batcher.waiting)
    service = CoachService(coach, max_batch=max_batch, wait_s=wait_s, workers=workers, max_queue=max_queue,
                           metrics=metrics)  # fmt: skip
    app.state.batcher = service.batcher
    app.state.metrics = metrics

    def answered(status: str) -> None:
        metrics.answers.labels(status=status).inc()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return JSONResponse(status_code=422, content={"detail": f"{where}: {first.get('msg', 'invalid')}"})

    @app.get("/health")
    async def health():
        from motioncoach.serving.proxy import answers

        ok, said = (True, "in this process") if upstream is None else await answers(upstream, upstream_key)
        content = {
            "status": "ok" if ok else "unavailable", "release": release, "backend": coach.backend.name,
            "model_server": {"answers": ok, "said": said}, "max_pixels": coach.max_pixels,
            "pose_weights": coach.weights.name,
        }  # fmt: skip
        return JSONResponse(status_code=200 if ok else 503, content=content)

    @app.get("/metrics")
    async def prometheus():
        body, media_type = metrics.render()
        return Response(content=body, media_type=media_type)

    @app.post("/v1/coach", response_model=AnalysisResponse)
    async def coach_photo(body: CoachBody, request: Request):
        request_id = request.state.request_id
        deadline = time.monotonic() + deadline_s
        try:
            photo = await asyncio.to_thread(read_photo, decode_base64_image(body.image), request_id)
        except PhotoError as exc:
            return JSONResponse(status_code=422, content={"detail": str(exc).removeprefix(f"{request_id}: ")})

        def failed(status: int, reason: str, headers: dict | None = None):
            answered("error")
            return JSONResponse(status_code=status, content=error_response(reason).model_dump(mode="json"),
                                headers=headers)  # fmt: skip

        try:
            result = await service.coach_photo(CoachRequest(photo=photo, activity=body.activity), deadline, request_id)
        except Busy as exc:
            return failed(429, f"The coach is busy ({exc}).", {"Retry-After": str(exc.retry_after_s)})
        except Expired:
            return failed(504, f"The coach took longer than {math.floor(deadline_s)} s on this photo; try again.")
        except Exception:  # noqa: BLE001 - logged by the batcher; the client gets the contract's error status
            return failed(500, "The coach failed on this photo; try again.")
        answered(result.response.status)
        return result.response

    add_app_route(app, service, deadline_s, answered)
    if upstream is not None:
        from motioncoach.serving.proxy import forward_openai_api

        forward_openai_api(app, upstream, api_key=upstream_key, timeout_s=deadline_s)

    routes = frozenset(route.path for route in app.routes)
    app.add_middleware(
        FrontDoor, token=token, body_limit=lambda path: MAX_UPLOAD_BYTES if path in APP_PATHS else MAX_BODY_BYTES,
        app_paths=APP_PATHS, too_large=upload_too_large, routes=routes, on_answer=metrics.request,
    )  # fmt: skip
    return app
