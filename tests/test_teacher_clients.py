"""The real google-genai and openai SDKs against fake teachers: answers, errors, timeouts, concurrency, batches."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import traceback

import pytest
from google.genai import errors, types
from PIL import Image
from pydantic import ValidationError

from motioncoach.labels import CoachingLabel, grounding_problems
from motioncoach.records import KEYPOINT_NAMES, Keypoint, PoseSample
from motioncoach.teachers.base import BlockedAnswer, PermanentError, TeacherAnswer, TeacherRequest, TransientError
from motioncoach.teachers.gemini import INLINE_BATCH_BUDGET, GeminiTeacher, inline_batch_bytes
from motioncoach.teachers.openrouter import OpenRouterTeacher
from motioncoach.teachers.request import label_json_schema
from tests.fakes import GeminiFake, OpenRouterFake, grounded_label, parse_keypoints

KEY = "sk-test-4f1c9a0b7e2d4c6a"
KEYPOINTS = {"left_knee": (0.512, 0.733), "right_knee": (0.401, 0.702), "left_hip": (0.5, 0.5)}
PROMPT = "Activity: squat\nKeypoints (x, y, normalized):\n" + "".join(
    f"{name}: [{x:.3f}, {y:.3f}]\n" for name, (x, y) in KEYPOINTS.items()
)


def make_request(n: int = 0) -> TeacherRequest:
    """A request with a real little JPEG of seeded noise: distinct bytes per n."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (32, 24), random.Random(n).randbytes(32 * 24 * 3)).save(buffer, format="JPEG")
    image = buffer.getvalue()
    return TeacherRequest(
        sha256=hashlib.sha256(image).hexdigest(),
        image_jpeg=image,
        system="You are a movement coach.",
        prompt=PROMPT,
        response_schema=label_json_schema(),
    )


@pytest.fixture(params=["gemini", "openrouter"])
def served(request, monkeypatch):
    """A running fake of one protocol, its SDK routed to it through the env var only, and a teacher factory."""
    kind = request.param
    fake = GeminiFake(KEY) if kind == "gemini" else OpenRouterFake(KEY)
    with fake:
        if kind == "gemini":
            monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)

            def teacher(**kw):
                return GeminiTeacher(api_key=kw.pop("api_key", KEY), **kw)
        else:
            monkeypatch.setenv("OPENROUTER_BASE_URL", fake.base_url)

            def teacher(**kw):
                return OpenRouterTeacher(api_key=kw.pop("api_key", KEY), **kw)

        yield fake, teacher


def ask(teacher, *requests: TeacherRequest):
    """Run asks concurrently on a fresh loop; return answers or raised exceptions, in order."""

    async def run():
        try:
            return await asyncio.gather(*(teacher.ask(r) for r in requests), return_exceptions=True)
        finally:
            await teacher.aclose()

    return asyncio.run(run())


def test_valid_answer_with_token_counts_via_env_base_url(served):
    fake, teacher = served
    (answer,) = ask(teacher(), make_request())
    assert isinstance(answer, TeacherAnswer) and answer.unusable is None
    label = CoachingLabel.model_validate_json(answer.text)
    start = label.feedback_points[0].visuals.vectors[0].start
    assert tuple(start) == KEYPOINTS["left_knee"] and label.feedback_points[0].side == "left"
    # Gemini 3 bills the image alone at about 1,120 tokens (its default media resolution), the prompts on top.
    assert answer.input_tokens > (1120 if isinstance(fake, GeminiFake) else 270)
    # What the service reported: Gemini's candidates and thoughts are both billed as output.
    if isinstance(fake, GeminiFake):
        usage = fake.last_response["usageMetadata"]
        assert answer.output_tokens == usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
        assert usage["thoughtsTokenCount"] > 0
    else:
        assert answer.output_tokens == fake.last_completion["usage"]["completion_tokens"]
    assert fake.requests == 1  # reached the fake through the env var alone
    assert fake.requests_per_image[make_request().sha256] == 1


def test_gemini_request_carries_system_schema_and_thinking_level(monkeypatch):
    with GeminiFake(KEY) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        ask(GeminiTeacher(api_key=KEY, thinking_level="low", temperature=0.3), make_request())
        body = fake.last_request
    config = body["generationConfig"]
    assert config["responseJsonSchema"] == label_json_schema()
    assert config["responseMimeType"] == "application/json"
    # google-genai 3.6 writes this one field in snake case; the API reads both spellings.
    assert "LOW" in config["thinkingConfig"].values() and config["temperature"] == 0.3
    assert body["systemInstruction"]["parts"][0]["text"] == "You are a movement coach."


def test_answers_with_fields_the_sdk_does_not_know_are_read_as_the_sdk_reads_them(monkeypatch):
    """Gemini adds fields as it grows; google-genai's models forbid unknown ones, so the raw body must not
    be validated as it comes: the SDK drops what it does not know first, and so does the client."""
    with GeminiFake(KEY) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        (answer,) = ask(GeminiTeacher(api_key=KEY), make_request())
        raw = fake.last_response
    assert raw["serviceTier"] == "standard" and "futureCandidateScore" in raw["candidates"][0]
    assert (
        "futurePartFlag" in raw["candidates"][0]["content"]["parts"][0]
        and "serviceTierTokenCount" in raw["usageMetadata"]
    )
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        types.GenerateContentResponse.model_validate(raw)  # what reading the raw body would do
    assert isinstance(answer, TeacherAnswer) and CoachingLabel.model_validate_json(answer.text)
    usage = raw["usageMetadata"]
    assert answer.input_tokens == usage["promptTokenCount"]
    assert answer.output_tokens == usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    assert fake.requests == 1


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (lambda b: {**b, "candidates": [{"finishReason": "OTHER", "index": 0}]}, "no text (finish reason OTHER)"),
        (lambda b: {"usageMetadata": b["usageMetadata"]}, "no text (finish reason missing)"),
        (lambda b: {**b, "candidates": [{"content": {"parts": "not a list"}}]}, "body google-genai cannot read"),
    ],
)
def test_a_billed_answer_without_usable_text_comes_back_once_with_its_tokens(monkeypatch, body, why):
    with GeminiFake(KEY, respond=lambda call, response: body(response)) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        (answer,) = ask(GeminiTeacher(api_key=KEY), make_request())
        usage = fake.last_response["usageMetadata"]
    assert isinstance(answer, TeacherAnswer) and answer.text == "" and why in answer.unusable
    assert answer.input_tokens == usage["promptTokenCount"] > 1120  # billed, so counted
    assert answer.output_tokens == usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    assert fake.requests == 1


def test_a_body_that_is_not_json_comes_back_unusable_not_as_an_error_to_retry(monkeypatch):
    with GeminiFake(KEY, respond=lambda call, response: "<html>upstream proxy</html>") as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        (answer,) = ask(GeminiTeacher(api_key=KEY), make_request())
    assert isinstance(answer, TeacherAnswer) and answer.unusable == "gemini answered with a body that is not JSON"
    assert (answer.input_tokens, answer.output_tokens) == (0, 0) and fake.requests == 1


def test_thinking_is_configured_per_model_family(monkeypatch):
    """A level for Gemini 3, a budget for 2.5 (which answers 400 to a level), nothing for older models."""
    from google import genai

    with GeminiFake(KEY) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        client = genai.Client(api_key=KEY)  # the SDK itself, sending a level where the model takes none
        with pytest.raises(errors.ClientError, match="Thinking level is not supported for this model"):
            client.models.generate_content(
                model="gemini-2.5-flash", contents="hello",
                config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level="low")),
            )  # fmt: skip
        sent = {}
        for model in ("gemini-3-flash-preview", "models/gemini-2.5-flash", "gemini-2.0-flash"):
            teacher = GeminiTeacher(model, api_key=KEY, thinking_level="low", thinking_budget=512)
            (answer,) = ask(teacher, make_request())
            assert isinstance(answer, TeacherAnswer), (model, answer)
            sent[model] = (fake.last_request["generationConfig"].get("thinkingConfig"), teacher.generation_params())
    assert sent["gemini-3-flash-preview"] == ({"thinkingLevel": "LOW"}, {"thinking_level": "low", "temperature": None})
    assert sent["models/gemini-2.5-flash"] == ({"thinkingBudget": 512}, {"thinking_budget": 512, "temperature": None})
    assert sent["gemini-2.0-flash"] == (None, {"temperature": None})
    assert fake.requests == 3 and not fake.errors


def test_rate_limit_carries_retry_after(served):
    fake, teacher = served
    fake.faults = ["rate_limit"]
    (error,) = ask(teacher(), make_request())
    assert isinstance(error, TransientError) and error.status == 429 and error.retry_after == 7
    assert fake.requests == 1  # the SDK did not retry on its own


def test_retry_after_without_the_header(served):
    """Gemini: from the RetryInfo detail; OpenRouter: from X-RateLimit-Reset in the error metadata."""
    fake, teacher = served
    fake.faults, fake.retry_after_header = ["rate_limit"], False
    (error,) = ask(teacher(), make_request())
    assert isinstance(error, TransientError) and 5.5 < error.retry_after <= 7


@pytest.mark.parametrize(("fault", "status"), [("server_error", 500), ("unavailable", 503)])
def test_server_errors_are_transient_and_not_retried_by_the_sdk(served, fault, status):
    fake, teacher = served
    fake.faults = [fault]
    (error,) = ask(teacher(), make_request())
    assert isinstance(error, TransientError) and error.status == status
    assert fake.requests == 1


def test_a_hang_past_the_timeout_is_transient_and_not_waited_out(served):
    fake, teacher = served
    fake.faults = ["hang"]
    (error,) = ask(teacher(timeout_s=0.5), make_request())
    assert isinstance(error, TransientError)
    # The client gave up while the fake still held the answer (it hangs for 30 s), and sent nothing again.
    assert fake.in_flight == 1 and fake.requests == 1 and fake.faults_served["hang"] == 1


def test_a_wrong_key_is_permanent_and_never_echoed(served):
    fake, teacher = served
    secret = "sk-wrong-9d8c7b6a5f4e3d2c"
    (error,) = ask(teacher(api_key=secret), make_request())
    assert isinstance(error, PermanentError) and error.status in (400, 401)
    for text in (str(error), repr(error), "".join(traceback.format_exception(error))):
        assert secret not in text
    assert fake.requests == 0  # rejected before any labeling


def test_a_dead_port_is_transient(monkeypatch):
    with GeminiFake(KEY) as fake:
        url = fake.base_url
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", url)
    monkeypatch.setenv("OPENROUTER_BASE_URL", url)
    for teacher in (GeminiTeacher(api_key=KEY, timeout_s=2), OpenRouterTeacher(api_key=KEY, timeout_s=2)):
        (error,) = ask(teacher, make_request())
        assert isinstance(error, TransientError) and KEY not in str(error)


@pytest.mark.parametrize("fault", ["truncated", "schema_violation"])
def test_an_invalid_answer_comes_back_as_text(served, fault):
    """Validation is the caller's job: the client returns what the model wrote."""
    fake, teacher = served
    fake.faults = [fault]
    (answer,) = ask(teacher(), make_request())
    assert isinstance(answer, TeacherAnswer) and answer.text.startswith('{"status"')
    with pytest.raises(ValidationError):
        CoachingLabel.model_validate_json(answer.text)


def test_a_custom_answer_function(served):
    fake, teacher = served
    fake.answer = lambda call: f'{{"attempt": {call.attempt}, "chars": {len(call.prompt)}}}'
    answers = ask(teacher(), make_request(), make_request())
    assert sorted(a.text for a in answers) == [f'{{"attempt": {n}, "chars": {len(PROMPT)}}}' for n in (1, 2)]


def test_a_blocked_answer_is_a_billed_refusal_not_a_retryable_error(served):
    fake, teacher = served
    fake.faults = ["blocked"]
    (refusal,) = ask(teacher(), make_request())
    assert isinstance(refusal, BlockedAnswer) and isinstance(refusal, PermanentError)
    assert str(refusal).startswith(f"blocked by {teacher().name}:") and "SAFETY" in str(refusal)
    assert refusal.answer.input_tokens > 0  # a refusal is still billed


def test_structured_output_is_asked_for_as_each_service_documents_it(served):
    fake, teacher = served
    (answer,) = ask(teacher(), make_request())
    assert isinstance(answer, TeacherAnswer) and not fake.errors
    if isinstance(fake, GeminiFake):
        schema = fake.last_request["generationConfig"]["responseJsonSchema"]
        assert schema["properties"]["status"]["enum"] == ["success", "low_confidence"]
        assert "description" in schema["properties"]["feedback_points"]["items"]
    else:
        assert fake.last_request["provider"] == {"require_parameters": True}
        assert fake.last_request["response_format"]["json_schema"]["strict"] is True


def test_the_fakes_refuse_what_the_services_refuse(served):
    fake, teacher = served
    loose = make_request().model_copy(update={"response_schema": CoachingLabel.model_json_schema()})
    (refused,) = ask(teacher(), loose)
    assert isinstance(refused, PermanentError) and refused.status == 400
    assert ("is not supported" if isinstance(fake, GeminiFake) else "additionalProperties") in str(refused)


def test_concurrent_asks_overlap(served):
    fake, teacher = served
    fake.latency = 0.2
    requests = [make_request(n) for n in range(64)]
    answers = ask(teacher(), *requests)
    assert all(isinstance(a, TeacherAnswer) for a in answers)
    # The fake held at least half of them at once: the client does not serialize.
    assert fake.max_in_flight >= 32 and fake.requests == 64


def test_gemini_batch_round_trip(monkeypatch):
    requests = [make_request(n) for n in range(3)]
    with GeminiFake(KEY, faults=[None, "rate_limit", "truncated"], batch_running_polls=1) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        teacher = GeminiTeacher(api_key=KEY)

        async def run():
            try:
                name = await teacher.submit_batch(requests, "motioncoach-round-trip")
                return name, await teacher.collect_batch(name), await teacher.collect_batch(name)
            finally:
                await teacher.aclose()

        name, running, done = asyncio.run(run())
    assert name.startswith("batches/") and running.state == "JOB_STATE_RUNNING" and not running.answers
    assert done.succeeded and set(done.answers) == {r.sha256 for r in requests} and done.unmatched == 0
    ok, limited, truncated = (done.answers[r.sha256] for r in requests)
    assert CoachingLabel.model_validate_json(ok.text) and ok.output_tokens > 0 and ok.input_tokens > 1120
    # A batch entry's error carries a google.rpc code (8), read as what it is, not as an HTTP status.
    assert isinstance(limited, TransientError) and limited.status == 429
    assert "RESOURCE_EXHAUSTED (google.rpc code 8)" in str(limited)
    assert isinstance(truncated, TeacherAnswer) and truncated.text and truncated.text[-1] != "}"
    assert fake.requests == 3


def big_request(n: int) -> TeacherRequest:
    """A request carrying a 768 x 576 photo of noise: about 400 KB of JPEG, as much as a busy real photo."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (768, 576), random.Random(n).randbytes(768 * 576 * 3)).save(buffer, "JPEG", quality=90)
    return make_request(n).model_copy(
        update={"image_jpeg": buffer.getvalue(), "sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}
    )


def test_a_batch_over_20_mb_goes_as_a_jsonl_file_through_the_files_api(monkeypatch):
    requests = [big_request(n) for n in range(48)]
    assert inline_batch_bytes(requests) > 20_000_000 > INLINE_BATCH_BUDGET
    with GeminiFake(KEY, faults=[None] * 46 + ["blocked", "server_error"], batch_running_polls=0) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        teacher = GeminiTeacher(api_key=KEY)

        async def run():
            try:
                assert teacher.needs_upload(requests)
                input_file = await teacher.upload_batch_input(requests, "motioncoach-big")
                return await teacher.collect_batch(await teacher.submit_batch(requests, "motioncoach-big", input_file))
            finally:
                await teacher.aclose()

        done = asyncio.run(run())
        uploaded = [f for f in fake.files.values() if not f["generated"]]
    assert len(uploaded) == 1 and len(uploaded[0]["data"]) > 20_000_000  # sent in 8 MB resumable chunks
    assert max(fake.batch_request_bytes) < 10_000  # the job names the file instead of inlining it
    assert fake.requests == 48 and set(done.answers) == {r.sha256 for r in requests}
    answers = [done.answers[r.sha256] for r in requests]
    assert all(CoachingLabel.model_validate_json(a.text) for a in answers[:46])  # lines with unknown fields
    assert isinstance(answers[46], BlockedAnswer) and answers[46].answer.input_tokens > 1120
    assert isinstance(answers[47], TransientError) and "INTERNAL (google.rpc code 13)" in str(answers[47])
    results = next(f for f in fake.files.values() if f["generated"])["data"].decode()
    assert '"serviceTier": "standard"' in results  # what google-genai would refuse to validate as it comes
    assert not fake.errors


def test_an_inline_batch_over_20_mb_is_refused_by_the_fake_as_by_gemini(monkeypatch):
    from google import genai
    from google.genai import errors, types

    inlined = [
        types.InlinedRequest(contents=[types.Part.from_bytes(data=r.image_jpeg, mime_type="image/jpeg"), r.prompt])
        for r in (big_request(n) for n in range(48))
    ]
    with GeminiFake(KEY) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        client = genai.Client(api_key=KEY)  # the SDK itself, as a user who skips our chunking would call it
        with pytest.raises(errors.ClientError, match="payload size exceeds the limit"):
            client.batches.create(model="gemini-3-flash-preview", src=types.BatchJobSource(inlined_requests=inlined))
    assert fake.requests == 0 and max(fake.batch_request_bytes) > 20_000_000


def test_an_expired_gemini_batch_ends_without_results(monkeypatch):
    with GeminiFake(KEY, batch_running_polls=0, batch_final_state="BATCH_STATE_EXPIRED") as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        teacher = GeminiTeacher(api_key=KEY)

        async def run():
            try:
                return await teacher.collect_batch(await teacher.submit_batch([make_request()], "motioncoach-expired"))
            finally:
                await teacher.aclose()

        ended = asyncio.run(run())
    assert ended.state == "JOB_STATE_EXPIRED" and ended.ended_without_results and not ended.answers


def test_a_job_created_by_a_create_that_failed_is_found_by_its_display_name(monkeypatch):
    requests = [make_request(n) for n in range(2)]
    with GeminiFake(KEY, batch_create_faults=["unavailable_after_create", "unavailable"]) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        teacher = GeminiTeacher(api_key=KEY)

        async def run():
            try:
                with pytest.raises(TransientError) as created:
                    await teacher.submit_batch(requests, "motioncoach-abc")
                with pytest.raises(TransientError):
                    await teacher.submit_batch(requests, "motioncoach-def")  # refused before a job existed
                return (
                    created.value, await teacher.find_batch("motioncoach-abc"),
                    await teacher.find_batch("motioncoach-abc", frozenset({"batches/fake1"})),
                    await teacher.find_batch("motioncoach-def"),
                )  # fmt: skip
            finally:
                await teacher.aclose()

        error, found, known, never = asyncio.run(run())
    assert error.status == 503 and found == "batches/fake1" and known is None and never is None
    assert list(fake.batches) == ["batches/fake1"] and fake.batch_creates == 2 and fake.batch_lists == 3


def pose_from(points: dict[str, tuple[float, float]]) -> PoseSample:
    keypoints = tuple(
        Keypoint(name=n, x=points[n][0], y=points[n][1], conf=0.9)
        if n in points
        else Keypoint(name=n, x=0, y=0, conf=0)
        for n in KEYPOINT_NAMES
    )
    return PoseSample(
        sha256="0" * 64,
        source_path="/x.jpg",
        activity="squat",
        width=200,
        height=100,
        box_conf=0.9,
        keypoints=keypoints,
    )


def test_the_fakes_default_label_is_grounded_and_its_faults_are_not():
    assert parse_keypoints(PROMPT) == KEYPOINTS
    sample = pose_from(KEYPOINTS)
    assert grounding_problems(grounded_label(PROMPT), sample) == []
    assert grounding_problems(grounded_label(PROMPT, fault="ungrounded"), sample)
    assert "names the right knee" in grounding_problems(grounded_label(PROMPT, fault="wrong_side"), sample)[0]


def test_fault_rate_is_seeded():
    def drawn(seed):
        fake = GeminiFake(KEY, fault_rate=0.5, seed=seed)
        return [fake.fault_for(fake.register(bytes([n]), PROMPT)) for n in range(20)]

    assert drawn(3) == drawn(3) and any(drawn(3)) and None in drawn(3)


def test_the_private_google_genai_functions_the_teacher_uses_are_there_as_called():
    """pyproject bounds google-genai below its next major version; within it, these must keep their shape."""
    import inspect

    from google import genai
    from google.genai import models as genai_models
    from google.genai import types

    client = genai.Client(api_key="not-a-real-key")
    request = inspect.signature(client.aio._api_client.async_request)
    assert list(request.parameters)[:3] == ["http_method", "path", "request_dict"]
    assert set(inspect.signature(types.GenerateContentResponse._from_response).parameters) == {"response", "kwargs"}
    assert callable(genai_models._GenerateContentResponse_from_mldev)
