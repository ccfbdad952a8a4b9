"""The MotionCoach app's own route: POST / (and /analyze) with the multipart form its client sends
(hackillinois-2026 `app/services/api.ts`): `video_file` (the take, an mp4), `activity_type`, and
`user_description`, `voice_id`, `previous_analysis`, which are accepted and not used (the student was
trained on a photo, an activity and its pose; the app's backend voices the scripts itself).

The answer is always HTTP 200 with the app's AnalysisResponse, its status saying success, low_confidence
or error: the app shows a mock answer for any other status. The vectors carry the app's colours and
`is_correction`, and each feedback point the moment of the take it is about.
"""

# No `from __future__ import annotations` in this module: FastAPI reads the handler's annotations.

import asyncio
import logging
import math
import time

from motioncoach.labels.response import AnalysisResponse, app_payload, error_response
from motioncoach.records import PoseSample
from motioncoach.serving.batcher import Busy, Expired
from motioncoach.serving.service import CoachService
from motioncoach.serving.video import UploadError, read_upload

log = logging.getLogger(__name__)

APP_PATHS = frozenset({"/", "/analyze"})
MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # a phone's 30 s take at 1080p; the app sends the file as recorded
MAX_ACTIVITY_CHARS = 100


def upload_too_large(limit: int) -> dict:
    """The app's answer to an upload over the limit (its body is refused before it is read whole)."""
    mb = limit // (1024 * 1024)
    return error_response(f"The upload is over {mb} MB: film a shorter take.").model_dump(mode="json")


def add_app_route(app, service: CoachService, deadline_s: float, on_answer) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse

    def answer(response: AnalysisResponse, payload: dict | None = None, headers: dict | None = None):
        on_answer(response.status)
        return JSONResponse(status_code=200, content=payload or app_payload(response), headers=headers)

    def failed(reason: str, headers: dict | None = None):
        return answer(error_response(reason), headers=headers)

    async def analyze(request: Request):
        request_id = request.state.request_id
        deadline = time.monotonic() + deadline_s
        try:
            form = await request.form(max_files=4, max_fields=32)
        except Exception as exc:  # noqa: BLE001 - any unreadable form is the app's error answer, never a 4xx
            log.info("%s: the form could not be read: %s", request_id, exc)
            return failed("The upload is not a multipart form with video_file: send it as the app does.")
        try:
            upload = form.get("video_file")
            if upload is None or isinstance(upload, str):
                return failed("Missing video_file in form data.")
            activity = str(form.get("activity_type") or "").replace("_", " ").strip()
            if not activity or len(activity) > MAX_ACTIVITY_CHARS:
                return failed(f"activity_type must name the activity in 1 to {MAX_ACTIVITY_CHARS} characters.")
            data = await upload.read()
        finally:
            await form.close()  # the spooled upload's temporary file
        try:
            frames = await asyncio.to_thread(read_upload, data, request_id)
        except UploadError as exc:
            return failed(f"The upload cannot be coached: {exc}.")
        try:
            take = await service.coach_take(frames, activity, deadline, request_id)
        except Busy as exc:
            return failed(f"The coach is busy ({exc}).", {"Retry-After": str(exc.retry_after_s)})
        except Expired:
            return failed(f"The coach took longer than {math.floor(deadline_s)} s on this take; try again.")
        except Exception:  # noqa: BLE001 - logged by the batcher; the app gets the contract's error status
            return failed("The coach failed on this take; try again.")
        response, sample = take.coached.response, take.coached.sample
        parts = [_body_part(point.visuals.vectors[0].start, sample) for point in response.feedback_points]
        at = take.frame.time_ms if take.frame else 0
        return answer(response, app_payload(response, timestamp_ms=at, body_parts=parts))

    for path in sorted(APP_PATHS):
        app.add_api_route(path, analyze, methods=["POST"], summary="The app's own route (multipart)")


def _body_part(start: list[float], sample: PoseSample | None) -> str | None:
    """The detected joint an arrow starts on, as the app names it above the arc ("Left Knee")."""
    if sample is None:
        return None
    x, y = start
    scale = (sample.width, sample.height)
    nearest = min(
        sample.confident(0.3).values(), default=None,
        key=lambda k: math.hypot((k.x - x) * scale[0], (k.y - y) * scale[1]),
    )  # fmt: skip
    return nearest.name.replace("_", " ").title() if nearest else None
