"""The teacher keeps what it bought: answers stored before they are checked, fixes instead of re-asks, a circuit
breaker for refusals no retry cures, a cap on the waits a teacher asks for, and a price before spending."""

from __future__ import annotations

import json
import re

import pytest

from motioncoach.config import LabelChecks, LabelConfig
from motioncoach.errors import ConfigurationError
from motioncoach.teachers.engine import SAME_REFUSALS_TO_STOP
from motioncoach.teachers.estimate import estimate_labeling, sample_input_tokens
from motioncoach.teachers.labeling import label_with_teachers, stored_teacher
from motioncoach.teachers.pricing import cost_usd, estimate_input_tokens
from motioncoach.teachers.request import build_request
from motioncoach.teachers.store import LabelKey, LabelStore
from tests.fakes import GeminiFake, OpenRouterFake, grounded_label
from tests.test_labeling import FAST, KEY, OR_KEY, make_samples

GEMINI = LabelConfig(labeler="gemini", **FAST)


@pytest.fixture
def gemini(monkeypatch):
    with GeminiFake(api_key=KEY, retry_after=0.05) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        yield fake


@pytest.fixture
def openrouter(monkeypatch):
    with OpenRouterFake(api_key=OR_KEY, retry_after=0.05) as fake:
        monkeypatch.setenv("OPENROUTER_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENROUTER_API_KEY", OR_KEY)
        yield fake


def keys(samples, name="gemini", config=GEMINI) -> list[LabelKey]:
    """The keys a run with this config asks the samples under."""
    teacher = stored_teacher(name, config)
    return [LabelKey.of(s, teacher.name, teacher.model_id, teacher.generation_params()) for s in samples]


def stored_rows(data_dir, samples, name="gemini", config=GEMINI):
    store = LabelStore.in_data_dir(data_dir)
    try:
        return [store.get(key) for key in keys(samples, name, config)]
    finally:
        store.close()


def stored_answers(data_dir, samples, name="gemini", config=GEMINI):
    store = LabelStore.in_data_dir(data_dir)
    try:
        return [store.answers_of(key) for key in keys(samples, name, config)]
    finally:
        store.close()


# ---- The circuit breaker ---------------------------------------------------------------------------------------


def test_a_400_on_every_request_stops_60_photos_within_10_requests_and_a_healthy_rerun_asks_each_once(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 60)
    gemini.faults = lambda call: "bad_request"
    with pytest.raises(ConfigurationError) as stopped:
        label_with_teachers(samples, GEMINI, tmp_path / "data")
    message = str(stopped.value)
    assert f"gemini refused {SAME_REFUSALS_TO_STOP} requests in a row the same way" in message
    assert "Request contains an invalid argument." in message  # the API's own words
    assert "--gemini-model" in message and "Nothing refused counts as an ask" in message
    assert gemini.requests <= 10
    # No image is locked out: the refused requests counted no ask.
    assert all(row is None or row.asks == 0 for row in stored_rows(tmp_path / "data", samples))

    gemini.faults = None
    gemini.reset_counters()
    report = label_with_teachers(samples, GEMINI, tmp_path / "data")
    assert len(report.labeled) == 60 and gemini.requests == 60
    assert set(gemini.requests_per_image.values()) == {1}


@pytest.mark.parametrize(
    ("fault", "says"),
    [("no_credits", "account has no credits left"), ("bad_request", "Provider returned error: invalid image data")],
)
def test_openrouter_refusing_every_request_stops_the_run_naming_what_to_change(tmp_path, openrouter, fault, says):
    samples = make_samples(tmp_path / "photos", 30)
    openrouter.faults = lambda call: fault
    with pytest.raises(ConfigurationError, match=re.escape(says)):
        label_with_teachers(samples, LabelConfig(labeler="openrouter", **FAST), tmp_path / "data")
    assert openrouter.requests <= 10
    openrouter.faults = None
    openrouter.reset_counters()
    report = label_with_teachers(samples, LabelConfig(labeler="openrouter", **FAST), tmp_path / "data")
    assert len(report.labeled) == 30 and max(openrouter.requests_per_image.values()) == 1


def test_refusals_of_some_images_between_answers_do_not_trip_the_breaker(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 12)
    refused = {3, 4, 8}  # never three in a row
    gemini.faults = lambda call: "bad_request" if call.number in refused else None
    report = label_with_teachers(samples, GEMINI.model_copy(update={"concurrency": 1}), tmp_path / "data")
    assert len(report.labeled) == 9 and len(report.having("failed")) == 3
    assert all("rejected by gemini" in o.reason for o in report.having("failed"))


def test_a_day_long_retry_after_defers_the_rest_with_when_to_rerun_and_loses_nothing(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 20)
    gemini.retry_after = 86400
    gemini.faults = lambda call: "rate_limit" if call.number > 5 else None
    config = GEMINI.model_copy(update={"concurrency": 1})
    report = label_with_teachers(samples, config, tmp_path / "data")
    assert len(report.labeled) == 5 and len(report.having("deferred")) == 15
    reason = report.usage[0]["stop_reason"]
    assert re.search(r"asked to wait 24\.0 h .*longer than labeling\.max_wait_s \(5 min\): the images left are "
                     r"labeled by a run after 20\d\d-\d\d-\d\dT\d\d:\d\d UTC", reason), reason  # fmt: skip
    assert gemini.requests == 6  # the five answers and the one that said wait

    gemini.faults = None
    gemini.reset_counters()
    rerun = label_with_teachers(samples, config, tmp_path / "data")
    assert len(rerun.labeled) == 20 and gemini.requests == 15  # the five answers were kept


# ---- Answers kept, fixed and checked again ---------------------------------------------------------------------


def test_answers_whose_score_contradicts_their_severities_are_kept_with_the_apps_score_at_one_ask(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 8)

    def contradicting(call):
        label = json.loads(grounded_label(call.prompt).to_json())
        label["progress_score"] = 40  # an intermediate correction: the app scores 95
        return json.dumps(label)

    gemini.answer = contradicting
    report = label_with_teachers(samples, GEMINI, tmp_path / "data")
    assert len(report.labeled) == 8 and gemini.requests == 8
    assert {o.label.progress_score for o in report.labeled} == {95}  # the app: 100 less 5 for an intermediate
    assert report.usage[0]["fixes"] == {"score": 8} and report.usage[0]["fixed"] == 8
    # The teacher's own score stays in the answer as it arrived.
    for answers in stored_answers(tmp_path / "data", samples):
        assert [json.loads(a.answer.text)["progress_score"] for a in answers] == [40]


def test_arrows_a_hair_off_and_in_each_others_colours_are_fixed_not_asked_again(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 4)

    def sloppy(call):
        label = json.loads(grounded_label(call.prompt).to_json())
        visuals = label["feedback_points"][0]["visuals"]
        for vector in visuals["vectors"]:
            vector["start"] = [vector["start"][0] + 0.02, vector["start"][1]]  # about a pixel off on 64 px
            vector["color"] = "green" if vector["label"] == "Current" else "red"
        return json.dumps(label)

    gemini.answer = sloppy
    report = label_with_teachers(samples, GEMINI, tmp_path / "data")
    assert len(report.labeled) == 4 and gemini.requests == 4
    assert report.usage[0]["fixes"] == {"colours": 4, "snapped": 4}
    for outcome in report.labeled:
        vectors = outcome.label.feedback_points[0].visuals.vectors
        assert [(v.label, v.color) for v in vectors] == [("Current", "red"), ("Target", "green")]
        assert vectors[0].start == vectors[1].start  # the app pairs them by their start

    strict = GEMINI.model_copy(update={"checks": LabelChecks(fix=False)})
    gemini.reset_counters()
    relabeled = label_with_teachers(samples, strict, tmp_path / "data", send=False)
    assert not relabeled.labeled and gemini.requests == 0  # unfixed, the same answers fail: nothing is bought


def test_a_check_loosened_after_a_run_labels_from_the_stored_answers_without_a_request(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 5)

    def off_the_knee(call):
        label = json.loads(grounded_label(call.prompt).to_json())
        visuals = label["feedback_points"][0]["visuals"]
        shift = -9 / 64  # 9 px on a 64 px photo: past the 6 px the default tolerance allows
        for vector in visuals["vectors"]:
            vector["start"][0] = round(vector["start"][0] + shift, 3)
            vector["end"][0] = round(vector["end"][0] + shift, 3)
        visuals["focus_point"]["x"] = round(visuals["focus_point"]["x"] + shift, 3)
        return json.dumps(label)

    gemini.answer = off_the_knee
    first = label_with_teachers(samples, GEMINI, tmp_path / "data")
    assert not first.labeled and all("not grounded" in o.reason for o in first.having("failed"))
    asked = gemini.requests
    assert asked == 5 * (1 + GEMINI.invalid_retries)

    loose = GEMINI.model_copy(update={"checks": LabelChecks(tolerance=0.4)})
    second = label_with_teachers(samples, loose, tmp_path / "data")
    assert len(second.labeled) == 5 and gemini.requests == asked
    assert second.usage[0]["requests"] == 0 and second.usage[0]["fixes"] == {"snapped": 5}


def test_an_answer_stored_but_not_checked_when_the_run_died_is_read_on_the_next_run(tmp_path, gemini):
    from motioncoach.teachers.base import TeacherAnswer

    [sample] = make_samples(tmp_path / "photos", 1)
    store = LabelStore.in_data_dir(tmp_path / "data")
    [key] = keys([sample])
    text = grounded_label(build_request(sample).prompt).to_json()
    store.add_answer(key, TeacherAnswer(text=text, input_tokens=1300, output_tokens=200), cost_usd=0.0012)
    store.close()
    report = label_with_teachers([sample], GEMINI, tmp_path / "data")
    assert len(report.labeled) == 1 and gemini.requests == 0
    [row] = stored_rows(tmp_path / "data", [sample])
    assert row.status == "labeled" and row.asks == 1


# ---- Costs -------------------------------------------------------------------------------------------------------


def test_openrouters_reported_cost_is_what_a_run_costs(tmp_path, openrouter):
    samples = make_samples(tmp_path / "photos", 4)
    openrouter.usd_per_million = (700.0, 900.0)  # nothing like any list price: only the reported cost gives this
    config = LabelConfig(labeler="openrouter", openrouter_model="openai/gpt-4o-mini", **FAST)
    report = label_with_teachers(samples, config, tmp_path / "data")
    answers = [a for per in stored_answers(tmp_path / "data", samples, "openrouter", config) for a in per]
    billed = sum((a.answer.input_tokens * 700 + a.answer.output_tokens * 900) / 1e6 for a in answers)
    assert len(answers) == 4 and report.usage[0]["cost_usd"] == pytest.approx(billed, rel=1e-6)


def test_cached_prompt_tokens_are_counted_at_the_cached_price(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 3)
    report = label_with_teachers(samples, GEMINI.model_copy(update={"concurrency": 1}), tmp_path / "data")
    usage = report.usage[0]
    assert usage["cached_tokens"] > 0  # the instructions are past the implicit cache's minimum of 1,024 tokens
    answers = [a.answer for per in stored_answers(tmp_path / "data", samples) for a in per]
    full, out, cached = (0.50, 3.00, 0.05)
    expected = sum(((a.input_tokens - a.cached_tokens) * full + a.cached_tokens * cached + a.output_tokens * out) / 1e6
                   for a in answers)  # fmt: skip
    assert usage["cost_usd"] == pytest.approx(expected, rel=1e-4)
    assert sorted(a.cached_tokens > 0 for a in answers) == [False, True, True]  # the first to arrive filled it


def test_the_estimate_sends_nothing_and_prices_what_a_run_would_ask(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 10)
    label_with_teachers(samples[:4], GEMINI, tmp_path / "data")
    gemini.reset_counters()
    [estimate] = estimate_labeling(samples, GEMINI, tmp_path / "data")
    assert gemini.http_requests == 0
    assert (estimate.images, estimate.from_store, estimate.to_ask) == (10, 4, 6)
    assert [s.sha256 for s in estimate.asked] == [s.sha256 for s in samples[4:]]
    tokens = sum(sample_input_tokens("gemini-3-flash-preview", s) for s in samples[4:])
    assert estimate.input_tokens == tokens
    assert estimate.cost_usd == round(cost_usd("gemini-3-flash-preview", tokens, estimate.output_tokens,
                                               GEMINI.prices), 4)  # fmt: skip
    assert "6 of 10 images to label (4 answered by the store): 6 requests" in estimate.line()

    # One estimator: the budget checks read the built requests and find the same tokens, on the safe side of
    # what the teacher then bills for them.
    assert sum(estimate_input_tokens("gemini-3-flash-preview", build_request(s)) for s in samples[4:]) == tokens
    report = label_with_teachers(samples, GEMINI, tmp_path / "data")
    billed = sum(a.answer.input_tokens for per in stored_answers(tmp_path / "data", samples[4:]) for a in per)
    assert report.usage[0]["requests"] == 6 and billed <= tokens


def test_the_readmes_labeling_figures_are_the_estimators():
    from pathlib import Path

    from motioncoach.config import DEFAULT_PRICES
    from motioncoach.teachers.pricing import TYPICAL_OUTPUT_TOKENS
    from tests.real_poses import detected

    photo = detected("bus, middle").model_copy(update={"width": 1024, "height": 768, "activity": "squat"})
    tokens = sample_input_tokens("gemini-3-flash-preview", photo)
    images = 2300
    cost = cost_usd("gemini-3-flash-preview", tokens * images, TYPICAL_OUTPUT_TOKENS * images, DEFAULT_PRICES)
    batch = cost_usd("gemini-3-flash-preview", tokens * images, TYPICAL_OUTPUT_TOKENS * images, DEFAULT_PRICES,
                     batch=True)  # fmt: skip
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert f"2,300 requests of about {round(tokens, -2):,} input tokens" in readme
    assert f"and {TYPICAL_OUTPUT_TOKENS} output tokens" in readme
    assert f"or {tokens * images / 1e6:.1f} M tokens / TPM minutes" in readme
    assert f"about ${cost:.1f} (${batch:.1f} with `--batch`" in readme
