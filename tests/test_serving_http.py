"""The coach's HTTP server in front of an OpenAI-compatible model server, as the Modal endpoint and
`motioncoach serve --openai-upstream` run it: the OpenAI API passed through, the app's own route, the
token, a bounded queue with deadlines, bounded bodies, request ids and metrics.

The model server is tests/fakes/openai_chat.py (vLLM's protocol, answering grounded labels); poses are
detected by the real yolo11n on real photos; the app's takes are real H.264 clips made with PyAV.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageFilter

from motioncoach.labels.response import AnalysisResponse
from tests.fakes.openai_chat import OpenAIChatFake
from tests.servers import free_port, running
from tests.videos import clip, held

ROOT = Path(__file__).resolve().parents[1]
PIXELS = 16384  # the local recipe's MAX_PIXELS: photos reach the model at 128 x 128
TOKEN = "serve-token-for-tests-7f3a"
# The form the app's client sends (app/services/api.ts), previous_analysis as its trimmed JSON string.
APP_FIELDS = {
    "activity_type": "basketball_shot", "user_description": "my jump shot", "voice_id": "s3TPKV1kjDlVtZbl4Ksh",
    "previous_analysis": json.dumps({"progress_score": 70, "feedback_points": []}),
}  # fmt: skip


def _astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def _photo_bytes(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _zidane() -> bytes:
    import ultralytics

    return (Path(ultralytics.__file__).parent / "assets" / "zidane.jpg").read_bytes()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _app(chat: OpenAIChatFake, **options):
    from motioncoach.serving.backends import OpenAIChatBackend
    from motioncoach.serving.coach import Coach
    from motioncoach.serving.http import create_app

    backend = OpenAIChatBackend(chat.base_url, chat.served_model, max_tokens=1024, name="stand-in vLLM")
    return create_app(Coach(backend, PIXELS), release="/data/merged/run-1", upstream=chat.root_url, **options)


def _post_take(url: str, video: bytes, path: str = "/", **fields) -> httpx.Response:
    files = {"video_file": (f"video_{int(time.time() * 1000)}.mp4", video, "video/mp4")}
    return httpx.post(f"{url}{path}", files=files, data={**APP_FIELDS, **fields}, timeout=120,
                      headers={"Accept": "application/json"})  # fmt: skip


# ---- `motioncoach serve --openai-upstream` ----


def test_serve_in_front_of_an_openai_server_passes_its_api_through_and_coaches_from_its_answers(tmp_path):
    """The command as users run it, with a token of its own and the upstream's key, in front of the stand-in."""
    from openai import OpenAI

    with OpenAIChatFake(api_key="upstream-key") as chat:
        port = free_port()
        env = os.environ | {"MOTIONCOACH_SERVE_TOKEN": TOKEN, "MOTIONCOACH_SERVE_UPSTREAM_KEY": "upstream-key"}
        command = [sys.executable, "-m", "cli.main", "serve", "--openai-upstream", chat.base_url, "--port", str(port),
                   "--adapter", str(tmp_path / "no-release-here"), "--max-pixels", str(PIXELS)]  # fmt: skip
        process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
                try:
                    health = httpx.get(f"{url}/health", timeout=5)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            assert health.status_code == 200 and health.json()["release"] == f"motioncoach at {chat.root_url}"
            assert health.json()["model_server"] == {"answers": True, "said": "GET /v1/models answered 200"}
            assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401  # our token, before anything else

            models = httpx.get(f"{url}/v1/models", headers=auth, timeout=10)
            assert models.status_code == 200 and [m["id"] for m in models.json()["data"]] == ["motioncoach"]
            client = OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
            asked = [{"role": "user", "content": "Activity: squat\nleft_knee: [0.5, 0.6]\nleft_hip: [0.5, 0.4]"}]
            whole = client.chat.completions.create(model="motioncoach", messages=asked, max_tokens=600)
            streamed = client.chat.completions.create(model="motioncoach", messages=asked, max_tokens=600, stream=True)
            text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
            assert text == whole.choices[0].message.content and json.loads(text)["status"] == "success"
            missing = httpx.post(f"{url}/v1/chat/completions", headers=auth, timeout=10,
                                 json={"model": "other", "messages": asked})  # fmt: skip
            assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"

            body = {"image": _b64(_photo_bytes(_astronaut())), "activity": " standing "}
            coached = httpx.post(f"{url}/v1/coach", json=body, headers=auth, timeout=120)
            assert coached.status_code == 200, coached.text
            answer = AnalysisResponse.model_validate(coached.json())
            assert answer.status == "success" and answer.error_message is None and len(answer.feedback_points) == 1
            asked_photo = chat.calls[-1]
            assert asked_photo.user.startswith("Activity: standing\n")  # trimmed, as training wrote it
            width, height = asked_photo.image_sizes[0]
            assert width * height <= PIXELS and width % 32 == height % 32 == 0  # the training pixels
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=30)
    assert f"note: {tmp_path / 'no-release-here'}" not in stderr  # the folder is not here: nothing read from it
    assert "note: the model records no pose model: poses are detected with yolo11n-pose.pt" in stderr
    assert TOKEN not in stderr and "upstream-key" not in stderr


# ---- The app's own route ----


@pytest.fixture
def chat():
    with OpenAIChatFake() as fake:
        yield fake


def test_the_apps_form_with_a_take_of_one_person_is_coached_at_its_sharpest_frame_in_the_apps_colours(chat):
    from motioncoach.serving.video import read_frames

    photo = _astronaut()
    blurred = photo.filter(ImageFilter.GaussianBlur(3))
    plain = held(blurred, 2.0)
    times = [frame.time_ms for frame in read_frames(plain, "take")]
    sharp_at = times[7]  # one sharp frame among blurred ones, and two people in another: never chosen
    video = held(blurred, 2.0, marks={sharp_at // 100: photo, times[3] // 100: Image.open(io.BytesIO(_zidane()))})
    with running(_app(chat)) as url:
        for path in ("/", "/analyze"):
            answered = _post_take(url, video, path)
            assert answered.status_code == 200
            body = answered.json()
            assert body["status"] == "success" and "error_message" not in body and "improvement_delta" not in body
            assert AnalysisResponse.model_validate({**body, "feedback_points": []}).status == "success"
            (point,) = body["feedback_points"]
            assert point["mistake_timestamp_ms"] == sharp_at
            current, target = point["visuals"]["vectors"]
            assert (current["color"], current["label"], current["is_correction"]) == ("#FF3B30", "Current", True)
            assert (target["color"], target["label"], target["is_correction"]) == ("#34C759", "Target", True)
            assert max(abs(a - b) for a, b in zip(current["start"], target["start"], strict=True)) < 0.005
            side, joint = point["coaching_script"].split()[2:4]  # "Bend your LEFT elbow ..."
            assert current["body_part"] == target["body_part"] == f"{side.title()} {joint.title()}"
    assert chat.calls[-1].user.startswith("Activity: basketball shot\n")


def test_the_apps_route_always_answers_200_with_a_status_nobody_low_confidence_garbage_error(chat):
    blank = clip([Image.new("RGB", (320, 240), (40, 90, 40))] * 10)
    with running(_app(chat)) as url:
        nobody = _post_take(url, blank)
        assert nobody.status_code == 200 and nobody.json() == {
            "status": "low_confidence", "error_message": "No person was found in the video: film it with one person "
            "in the frame.", "feedback_points": [], "positive_note": "", "progress_score": 0,
        }  # fmt: skip
        garbage = _post_take(url, b"\x00\x01 this is no mp4 \xff" * 100)
        assert garbage.status_code == 200 and garbage.json()["status"] == "error"
        assert garbage.json()["error_message"] == (
            "The upload cannot be coached: neither a video (not a video PyAV can read: Invalid data found when "
            "processing input) nor a photo (not an image)."
        )
        two = httpx.post(f"{url}/", files={"video_file": ("p.jpg", _zidane(), "image/jpeg")}, data=APP_FIELDS)
        assert (
            two.json()["error_message"] == "The photo shows 2 people: the coach needs exactly one person in the frame."
        )
        no_file = httpx.post(f"{url}/", data=APP_FIELDS)
        assert (no_file.status_code, no_file.json()["error_message"]) == (200, "Missing video_file in form data.")
        spaces = _post_take(url, blank, activity_type="   ")
        assert spaces.json()["error_message"] == "activity_type must name the activity in 1 to 100 characters."
        not_a_form = httpx.post(f"{url}/", content=b"{}", headers={"content-type": "application/json"})
        assert not_a_form.status_code == 200 and not_a_form.json()["status"] == "error"
    assert chat.calls == []  # none of these needed the model


def test_with_a_token_only_health_is_open_and_the_token_is_never_told(chat, caplog):
    import logging

    take = held(_astronaut(), 1.0)
    with caplog.at_level(logging.DEBUG), running(_app(chat, token=TOKEN)) as url:
        assert httpx.get(f"{url}/health").status_code == 200
        for method, path, options in [
            ("POST", "/v1/coach", {"json": {"image": "aGk=", "activity": "squat"}}),
            ("POST", "/", {"files": {"video_file": ("v.mp4", take)}, "data": APP_FIELDS}),
            ("GET", "/metrics", {}), ("GET", "/v1/models", {}),
        ]:  # fmt: skip
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                refused = httpx.request(method, f"{url}{path}", headers=headers, **options)
                assert refused.status_code == 401, (path, headers)
                assert refused.json() == {"detail": "a valid 'Authorization: Bearer' token is needed"}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        allowed = httpx.post(f"{url}/", files={"video_file": ("v.mp4", take)}, data=APP_FIELDS, headers=auth,
                             timeout=120)  # fmt: skip
        assert allowed.status_code == 200 and allowed.json()["status"] == "success"
        assert TOKEN not in allowed.text and TOKEN not in httpx.get(f"{url}/metrics", headers=auth).text
    assert TOKEN not in caplog.text


# ---- Under load ----


def test_a_photo_needing_no_model_is_answered_while_a_batch_waits_and_a_full_queue_says_when_to_retry(chat):
    from concurrent.futures import ThreadPoolExecutor

    chat.hold = threading.Event()
    one = {"image": _b64(_photo_bytes(_astronaut())), "activity": "standing"}
    app = _app(chat, max_batch=1, workers=1, max_queue=1)
    batcher = app.state.batcher
    with running(app) as url, ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, f"{url}/v1/coach", json=one, timeout=120)
        _until(lambda: chat.waiting == 1)  # in the model
        second = pool.submit(httpx.post, f"{url}/v1/coach", json=one, timeout=120)
        _until(lambda: batcher.waiting == 1)  # in the queue, which is full
        two = httpx.post(f"{url}/v1/coach", json={"image": _b64(_zidane()), "activity": "football"}, timeout=30)
        assert two.status_code == 200 and two.json()["status"] == "low_confidence"  # not behind the batch
        busy = httpx.post(f"{url}/v1/coach", json=one, timeout=30)
        assert busy.status_code == 429 and int(busy.headers["retry-after"]) >= 1
        assert busy.json()["status"] == "error" and busy.json()["error_message"].startswith(
            "The coach is busy (1 photos are waiting for the model: retry in "
        )
        app_busy = _post_take(url, held(_astronaut(), 1.0))
        assert app_busy.status_code == 200 and app_busy.json()["status"] == "error"
        assert int(app_busy.headers["retry-after"]) >= 1
        assert not first.done() and not second.done()
        chat.hold.set()
        assert [f.result().json()["status"] for f in (first, second)] == ["success", "success"]
        metrics = httpx.get(f"{url}/metrics").text
    assert 'motioncoach_requests_total{route="/v1/coach",status="429"} 1.0' in metrics
    assert 'motioncoach_requests_total{route="/v1/coach",status="200"} 3.0' in metrics
    assert "motioncoach_batch_size_count 2.0" in metrics and "motioncoach_queue_depth 0.0" in metrics
    assert 'motioncoach_answers_total{status="low_confidence"} 1.0' in metrics


def test_photos_that_wait_together_are_coached_in_one_model_call(chat):
    """While the model answers one photo, the two that arrive meanwhile wait, and go together in the next call."""
    from concurrent.futures import ThreadPoolExecutor

    chat.hold = threading.Event()
    one = {"image": _b64(_photo_bytes(_astronaut())), "activity": "standing"}
    app = _app(chat, max_batch=4, workers=1)
    batcher = app.state.batcher
    with running(app) as url, ThreadPoolExecutor(3) as pool:
        first = pool.submit(httpx.post, f"{url}/v1/coach", json=one, timeout=120)
        _until(lambda: chat.waiting == 1)  # the first photo is with the model
        later = [pool.submit(httpx.post, f"{url}/v1/coach", json=one, timeout=120) for _ in range(2)]
        _until(lambda: batcher.waiting == 2)  # the other two wait for it
        chat.hold.set()
        answers = [f.result() for f in (first, *later)]
    assert [a.json()["status"] for a in answers] == ["success"] * 3
    assert batcher.batches == [1, 2]


def test_a_request_past_its_deadline_is_answered_and_never_sent_to_the_model(chat):
    chat.hold = threading.Event()
    one = {"image": _b64(_photo_bytes(_astronaut())), "activity": "standing"}
    with running(_app(chat, max_batch=1, deadline_s=1.0)) as url:
        late = httpx.post(f"{url}/v1/coach", json=one, timeout=60)  # the model holds its answer
        assert late.status_code == 504
        assert late.json()["error_message"] == "The coach took longer than 1 s on this photo; try again."
        queued = threading.Thread(target=httpx.post, args=(f"{url}/v1/coach",), kwargs={"json": one, "timeout": 60})
        queued.start()  # waits behind the held call, past its own deadline
        queued.join()
        chat.hold.set()
        # A third photo, after the model is free: the queue is first in, first out, so by its answer the
        # second photo has been taken from the queue, and dropped or sent.
        after = httpx.post(f"{url}/v1/coach", json=one, timeout=60)
        assert after.status_code == 200
    assert len(chat.calls) == 2  # the first and the third: the second's deadline passed in the queue, unasked


def test_bodies_are_bounded_however_they_are_sent_and_activity_is_checked_after_trimming(chat):
    from motioncoach.serving.app_route import MAX_UPLOAD_BYTES
    from motioncoach.serving.http import MAX_BODY_BYTES

    def chunks(total: int, size: int = 1 << 20):
        for start in range(0, total, size):
            yield b"x" * min(size, total - start)

    with running(_app(chat)) as url:
        chunked = httpx.post(f"{url}/v1/coach", content=chunks(30 * 1024 * 1024), timeout=60,
                             headers={"content-type": "application/json"})  # fmt: skip
        assert "content-length" not in chunked.request.headers  # sent chunked: no length to refuse up front
        assert chunked.status_code == 413 and chunked.json() == {"detail": f"the body is over {MAX_BODY_BYTES} bytes"}
        declared = httpx.post(f"{url}/v1/coach", content=b"x" * (MAX_BODY_BYTES + 1), timeout=60)
        assert declared.status_code == 413
        take = httpx.post(f"{url}/", content=chunks(MAX_UPLOAD_BYTES + 1), timeout=60,
                          headers={"content-type": "multipart/form-data; boundary=x"})  # fmt: skip
        assert take.status_code == 200
        assert take.json()["error_message"] == "The upload is over 64 MB: film a shorter take."
        spaces = httpx.post(f"{url}/v1/coach", json={"image": "aGk=", "activity": "   "})
        assert spaces.status_code == 422 and spaces.json() == {
            "detail": "activity: String should have at least 1 character"
        }
        assert httpx.get(f"{url}/health").status_code == 200  # still serving


def test_every_answer_carries_its_request_id_and_the_log_names_it(chat, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="motioncoach"), running(_app(chat)) as url:
        mine = httpx.get(f"{url}/health", headers={"X-Request-ID": "app-take-42"})
        theirs = httpx.post(f"{url}/v1/coach", json={"image": _b64(_photo_bytes(_astronaut())), "activity": "yoga"},
                            headers={"X-Request-ID": "bad id with spaces"}, timeout=120)  # fmt: skip
    assert mine.headers["x-request-id"] == "app-take-42"
    given = theirs.headers["x-request-id"]
    assert given != "bad id with spaces" and len(given) == 16
    assert "app-take-42 GET /health -> 200 in " in caplog.text
    assert f"{given} POST /v1/coach -> 200 in " in caplog.text
    assert "answered a batch of 1 in" in caplog.text and f"(requests ['{given}'])" in caplog.text


def test_health_says_whether_the_model_server_answers_and_a_dead_upstream_is_a_502_not_a_crash():
    with OpenAIChatFake() as chat:
        app = _app(chat)
    with running(app) as url:  # the stand-in is gone
        health = httpx.get(f"{url}/health", timeout=30)
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        assert health.json()["release"] == "/data/merged/run-1"
        assert health.json()["model_server"] == {"answers": False, "said": "no answer (ConnectError)"}
        models = httpx.get(f"{url}/v1/models", timeout=30)
        assert models.status_code == 502 and models.json()["error"]["type"] == "upstream_error"


def _until(condition, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)
