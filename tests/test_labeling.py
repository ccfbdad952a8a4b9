"""Labeling with the paid teachers: the real SDKs against fakes of Gemini and OpenRouter."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from motioncoach.config import LabelConfig
from motioncoach.errors import ConfigurationError
from motioncoach.hashing import file_sha256
from motioncoach.labels.policy import LabelingFailed, check_failure_rate
from motioncoach.records import KEYPOINT_NAMES, Keypoint, PoseSample
from motioncoach.teachers.labeling import label_with_teachers
from motioncoach.teachers.store import STORE_FILE, LabelStore
from tests.fakes import GeminiFake, OpenRouterFake

KEY = "fake-gemini-test-secret-0123456789abcdef"
OR_KEY = "sk-or-test-secret-0123456789"
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}


def make_samples(folder: Path, count: int, seed: int = 0) -> list[PoseSample]:
    """Distinct small photos with a plausible left leg and right arm each."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for index in range(count):
        path = folder / f"photo_{index:03d}.png"
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
        bend = float(rng.uniform(0.05, 0.25))
        points = {
            "left_hip": (0.45, 0.45), "left_knee": (0.45, 0.65), "left_ankle": (0.45 + bend, 0.85),
            "right_shoulder": (0.6, 0.25), "right_elbow": (0.62, 0.4), "right_wrist": (0.7 - bend, 0.5),
        }  # fmt: skip
        keypoints = tuple(
            Keypoint(name=n, x=points[n][0], y=points[n][1], conf=0.9)
            if n in points
            else Keypoint(name=n, x=0, y=0, conf=0)
            for n in KEYPOINT_NAMES
        )
        samples.append(
            PoseSample(
                sha256=file_sha256(path), source_path=path, activity="squat", width=64, height=48, box_conf=0.9,
                keypoints=keypoints,
            )
        )  # fmt: skip
    return samples


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


def test_labels_are_stored_and_an_unchanged_rerun_sends_nothing(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 6)
    report = label_with_teachers(samples, LabelConfig(labeler="gemini"), tmp_path / "data")
    assert len(report.labeled) == 6 and gemini.requests == 6
    assert report.usage[0]["input_tokens"] > 0 and report.usage[0]["cost_usd"] > 0
    rerun = label_with_teachers(samples, LabelConfig(labeler="gemini"), tmp_path / "data")
    assert gemini.requests == 6
    assert [o.label for o in rerun.labeled] == [o.label for o in report.labeled]
    assert rerun.usage[0]["from_store"] == 6 and rerun.usage[0]["requests"] == 0

    more = samples + make_samples(tmp_path / "new", 2, seed=1)
    label_with_teachers(more, LabelConfig(labeler="gemini"), tmp_path / "data")
    assert gemini.requests == 8  # only the two new images


def test_a_new_prompt_or_model_makes_labels_stale_not_lost(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 3)
    label_with_teachers(samples, LabelConfig(labeler="gemini"), tmp_path / "data")
    # Another model asks again for every label the store holds: the run stops first, saying so and its cost.
    other = LabelConfig(labeler="gemini", gemini_model="gemini-2.5-flash")
    with pytest.raises(ConfigurationError, match=r"^3 of the 3 images the label store holds gemini labels for would be "
                       r"labeled again, about \$0\.\d+, because what is asked changed") as stopped:  # fmt: skip
        label_with_teachers(samples, other, tmp_path / "data")
    assert "Nothing was sent. Add --rebuy" in str(stopped.value) and gemini.requests == 3
    # gemini-2.5-flash takes a thinking budget, and answers 400 to the thinking level Gemini 3 takes.
    label_with_teachers(samples, other.model_copy(update={"rebuy": True}), tmp_path / "data")
    assert gemini.requests == 6 and gemini.last_request["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024
    }
    store = LabelStore.in_data_dir(tmp_path / "data")
    try:
        rows = [(r.key.model_id, r.status) for s in samples for r in store.labels_of(s.sha256)]
    finally:
        store.close()
    assert sorted(rows) == sorted([("gemini-3-flash-preview", "labeled")] * 3 + [("gemini-2.5-flash", "labeled")] * 3)


def test_thirty_percent_transient_faults_still_label_nearly_everything(tmp_path, gemini):
    gemini.fault_rate = 0.3
    samples = make_samples(tmp_path / "photos", 40)
    report = label_with_teachers(samples, LabelConfig(labeler="gemini", **FAST), tmp_path / "data")
    assert len(report.labeled) >= 0.95 * len(samples)
    assert sum(gemini.faults_served.values()) > 5
    check_failure_rate(report, 0.2, "store")  # the run succeeds


def test_retry_after_is_honoured(tmp_path, gemini, caplog):
    gemini.retry_after = 0.6  # far above the backoff FAST allows (0.05 s at most)
    gemini.faults = ["rate_limit"]
    caplog.set_level("DEBUG", logger="motioncoach.teachers.engine")
    report = label_with_teachers(make_samples(tmp_path / "photos", 1), LabelConfig(labeler="gemini", **FAST), tmp_path)
    assert len(report.labeled) == 1 and gemini.requests == 2
    (retry,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying ")]
    assert " in 0.6 s after " in retry  # the wait the teacher asked for, not the backoff


def test_bad_answers_are_retried_then_recorded_with_their_reason(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 3)
    broken, flaky = samples[0].sha256, samples[1].sha256
    sent_as = {_jpeg_sha(samples[0]): broken, _jpeg_sha(samples[1]): flaky}

    def faults(call):
        image = sent_as.get(call.image_sha)
        if image == broken:
            return "truncated"
        if image == flaky and call.attempt == 1:
            return "schema_violation"
        return None

    gemini.faults = faults
    config = LabelConfig(labeler="gemini", invalid_retries=2, **FAST)
    report = label_with_teachers(samples, config, tmp_path / "data")
    outcomes = {o.sample.sha256: o for o in report.outcomes}
    assert outcomes[broken].status == "failed"
    assert outcomes[broken].reason.startswith("invalid answer: not valid JSON")
    assert outcomes[flaky].status == "labeled"
    assert sorted(gemini.requests_per_image.values()) == [1, 2, 3]  # the broken one: 1 + 2 retries
    store = LabelStore.in_data_dir(tmp_path / "data")
    try:
        rows = [(r.status, r.attempts, r.asks) for r in store.labels_of(broken)]
    finally:
        store.close()
    assert rows == [("failed", 3, 3)]  # three answers: the default limit of asks, so it is not asked again


def test_every_call_failing_fails_the_run_and_a_healthy_teacher_finishes_it(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 5)
    gemini.faults = lambda call: "unavailable"
    config = LabelConfig(labeler="gemini", max_attempts=2, **FAST)
    report = label_with_teachers(samples, config, tmp_path / "data")
    assert len(report.failed) == 5 and report.failed[0].reason.startswith("gave up after 2 attempts")
    with pytest.raises(LabelingFailed, match="5 of 5 images could not be labeled"):
        check_failure_rate(report, config.max_failure_rate, "store")
    gemini.faults = None
    gemini.reset_counters()
    healed = label_with_teachers(samples, config, tmp_path / "data")
    assert len(healed.labeled) == 5 and gemini.requests == 5


def test_a_rejected_key_stops_at_once_and_never_leaks(tmp_path, gemini, monkeypatch, caplog):
    monkeypatch.setenv("GEMINI_API_KEY", "fake-gemini-wrong-key-000000000000")
    samples = make_samples(tmp_path / "photos", 8)
    with pytest.raises(ConfigurationError, match="check GEMINI_API_KEY") as error:
        label_with_teachers(samples, LabelConfig(labeler="gemini", concurrency=2), tmp_path / "data")
    assert gemini.http_requests <= 2
    assert "fake-gemini-wrong-key" not in str(error.value) and "fake-gemini-wrong-key" not in caplog.text


def test_kill_9_midway_repays_at_most_the_requests_in_flight(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 40)
    (tmp_path / "samples.json").write_text(json.dumps([s.model_dump(mode="json") for s in samples]))
    gemini.latency = 0.15
    concurrency = 4
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.labeling_worker", str(tmp_path / "samples.json"), str(tmp_path / "data"),
         str(concurrency)],
        env=os.environ.copy(), cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    store_path = tmp_path / "data" / STORE_FILE
    deadline = time.monotonic() + 120
    labeled = 0
    while labeled < 16 and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)
        if store_path.exists():
            try:
                with sqlite3.connect(store_path) as db:
                    labeled = db.execute("SELECT count(*) FROM labels WHERE status = 'labeled'").fetchone()[0]
            except sqlite3.OperationalError:  # the worker has created the file but not its tables yet
                continue
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert 16 <= labeled < 40
    before = gemini.requests
    report = label_with_teachers(samples, LabelConfig(labeler="gemini", concurrency=concurrency), tmp_path / "data")
    assert len(report.labeled) == 40
    repaid = sum(n - 1 for n in gemini.requests_per_image.values())
    assert repaid <= concurrency
    assert gemini.requests - before <= 40 - labeled + concurrency


def test_consensus_keeps_agreement_and_lists_disagreement(tmp_path, gemini, openrouter):
    samples = make_samples(tmp_path / "photos", 4)
    odd_one = samples[0]

    def answer(call):
        from tests.fakes import grounded_label

        label = grounded_label(call.prompt)
        if call.image_sha == _jpeg_sha(odd_one):  # OpenRouter finds nothing to correct where Gemini corrects
            label = label.model_copy(update={"feedback_points": []})
        return label.model_dump_json()

    openrouter.answer = answer
    report = label_with_teachers(samples, LabelConfig(labeler="consensus"), tmp_path / "data")
    assert len(report.labeled) == 3 and all(o.agreement["agree"] for o in report.labeled)
    [disagreed] = report.having("disagreed")
    assert disagreed.sample.sha256 == odd_one.sha256
    assert "one teacher corrects the form, the other finds nothing to correct" in disagreed.reason
    assert gemini.requests == 4 and openrouter.requests == 4
    kept = label_with_teachers(samples, LabelConfig(labeler="consensus", keep_disagreements=True), tmp_path / "data")
    assert len(kept.labeled) == 4 and gemini.requests == 4  # from the store


def _jpeg_sha(sample: PoseSample) -> str:
    import hashlib

    from motioncoach.teachers.request import encode_image

    return hashlib.sha256(encode_image(sample.source_path)).hexdigest()


def test_daily_budget_stops_cleanly_and_the_next_run_continues(tmp_path, openrouter):
    samples = make_samples(tmp_path / "photos", 8)
    report = label_with_teachers(samples, LabelConfig(labeler="openrouter", daily_budget=5, concurrency=2), tmp_path)
    assert (len(report.labeled), len(report.having("deferred")), len(report.failed)) == (5, 3, 0)
    assert "daily budget of 5" in report.usage[0]["stop_reason"]
    assert openrouter.requests == 5
    again = label_with_teachers(samples, LabelConfig(labeler="openrouter", daily_budget=5), tmp_path)
    assert openrouter.requests == 5 and len(again.having("deferred")) == 3
    tomorrow = label_with_teachers(samples, LabelConfig(labeler="openrouter", daily_budget=8), tmp_path)
    assert len(tomorrow.labeled) == 8 and openrouter.requests == 8


def test_max_cost_stops_before_it_is_exceeded(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 10)
    # $1,000 per million tokens: a request of an image (1,120 tokens on Gemini 3), the prompts (about a
    # thousand) and an answer costs a few dollars.
    prices = {"gemini-3-flash-preview": (1000.0, 1000.0)}
    config = LabelConfig(labeler="gemini", max_cost=10.0, prices=prices, concurrency=4)
    report = label_with_teachers(samples, config, tmp_path / "data")
    usage = report.usage[0]
    assert usage["cost_usd"] <= 10.0 and usage["input_tokens"] > 1120 * usage["requests"]
    assert 1 <= len(report.labeled) < 10 and len(report.having("deferred")) == 10 - len(report.labeled)
    assert "max cost $10.00 reached" in usage["stop_reason"]


def test_batch_jobs_are_submitted_then_collected_on_a_later_run(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 3)
    config = LabelConfig(labeler="gemini", batch=True)
    submitted = label_with_teachers(samples, config, tmp_path / "data")
    assert len(submitted.having("deferred")) == 3 and gemini.requests == 3
    running = label_with_teachers(samples, config, tmp_path / "data")  # the job still reports RUNNING
    assert len(running.having("deferred")) == 3 and gemini.requests == 3
    collected = label_with_teachers(samples, config, tmp_path / "data")
    assert len(collected.labeled) == 3 and gemini.requests == 3
    assert collected.usage[0]["cost_usd"] > 0
    label_with_teachers(samples, LabelConfig(labeler="gemini"), tmp_path / "data")
    assert gemini.requests == 3  # the synchronous path reuses the batch's labels


def test_keys_never_reach_the_data_dir(tmp_path, gemini, openrouter):
    samples = make_samples(tmp_path / "photos", 3)
    label_with_teachers(samples, LabelConfig(labeler="consensus"), tmp_path / "data")
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes() and OR_KEY.encode() not in path.read_bytes()


def test_a_blocked_answer_is_asked_once_recorded_with_its_cost_and_never_asked_again(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 4)
    refused = _jpeg_sha(samples[1])
    gemini.faults = lambda call: "blocked" if call.image_sha == refused else None
    report = label_with_teachers(samples, LabelConfig(labeler="gemini", **FAST), tmp_path / "data")
    assert gemini.requests_per_image[refused] == 1 and gemini.requests == 4
    (failed,) = report.failed
    assert failed.sample.sha256 == samples[1].sha256 and failed.reason == "blocked by gemini: finish reason SAFETY"
    store = LabelStore.in_data_dir(tmp_path / "data")
    try:
        (row,) = store.labels_of(samples[1].sha256)
    finally:
        store.close()
    assert row.cost_usd > 0 and row.input_tokens > 1120  # the refusal was billed, and the store says so
    again = label_with_teachers(samples, LabelConfig(labeler="gemini", **FAST), tmp_path / "data")
    assert gemini.requests == 4 and len(again.labeled) == 3 and again.failed[0].reason == failed.reason


def test_a_paid_model_without_a_price_refuses_max_cost_before_any_request(tmp_path, openrouter):
    samples = make_samples(tmp_path / "photos", 2)
    paid = LabelConfig(labeler="openrouter", openrouter_model="openai/gpt-4o-mini", max_cost=1.0)
    with pytest.raises(ConfigurationError) as refused:
        label_with_teachers(samples, paid, tmp_path / "data")
    message = str(refused.value)
    assert "'openai/gpt-4o-mini'" in message and "--price openai/gpt-4o-mini=" in message and "--max-cost" in message
    assert openrouter.http_requests == 0
    # Priced through the setting the message names, the cap works; its spend is known.
    priced = paid.model_copy(update={"prices": {**paid.prices, "openai/gpt-4o-mini": (0.15, 0.60)}})
    report = label_with_teachers(samples, priced, tmp_path / "data")
    assert len(report.labeled) == 2 and report.usage[0]["priced"] and report.usage[0]["cost_usd"] > 0
    # Without a cap an unpriced model runs, and its usage says its cost is unknown rather than $0.
    other = label_with_teachers(
        samples, paid.model_copy(update={"max_cost": None, "temperature": 0.5}), tmp_path / "d2"
    )
    assert len(other.labeled) == 2 and other.usage[0]["priced"] is False
    free = LabelConfig(labeler="openrouter", max_cost=0.0)  # ':free' models cost nothing: a zero cap is fine
    assert len(label_with_teachers(samples, free, tmp_path / "d3").labeled) == 2


def test_batch_mode_counts_submitted_requests_against_the_daily_budget_and_max_cost(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 10)
    data = tmp_path / "data"
    gemini.batch_running_polls = 0  # each job is done by the next run
    budget = label_with_teachers(samples, LabelConfig(labeler="gemini", batch=True, daily_budget=4), data)
    assert gemini.requests == 4 and len(budget.having("deferred")) == 10
    assert (
        "daily budget of 4 gemini requests is spent: 6 images left for the next run" in budget.usage[0]["stop_reason"]
    )
    store = LabelStore.in_data_dir(data)
    try:
        assert store.requests_today("gemini") == 4
    finally:
        store.close()
    # At $1,000 per million tokens, half that at the batch price, a request is estimated from its real
    # size: the image at Gemini 3's 1,120 tokens, about 2,700 more for the texts (a token per 3.5
    # characters of instructions, pose block and schema) and 700 for the answer: about $2.3 each, so a
    # $6 cap submits two more.
    prices = {"gemini-3-flash-preview": (1000.0, 1000.0)}
    capped = LabelConfig(labeler="gemini", batch=True, max_cost=6.0, prices=prices)
    report = label_with_teachers(samples, capped, data)  # collects the first job, then submits within the cap
    assert len(report.labeled) == 4 and gemini.requests == 6
    assert "max cost $6.00 reached at the batch price (about $2.2" in report.usage[0]["stop_reason"]
    assert "2 images wait in Gemini batch job(s)" in report.usage[0]["stop_reason"]
    # When the job finishes, what it was billed (its answers' reported usage) is set against the estimate.
    label_with_teachers(samples[:6], capped, data)
    store = LabelStore.in_data_dir(data)
    try:
        second = [job for job in store.batch_jobs("gemini") if len(job.images) == 2]
    finally:
        store.close()
    assert [job.state for job in second] == ["collected"]
    assert 0 < second[0].billed_cost_usd <= second[0].estimated_cost_usd <= capped.max_cost


def test_a_batch_job_that_expires_gives_its_images_back_and_none_is_in_two_live_jobs(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 3)
    data, config = tmp_path / "data", LabelConfig(labeler="gemini", batch=True)
    gemini.batch_running_polls, gemini.batch_final_state = 0, "BATCH_STATE_EXPIRED"
    label_with_teachers(samples, config, data)
    label_with_teachers(samples, config, data)  # the first job expired: its images go into a new one
    assert gemini.requests == 6 and len(gemini.batches) == 2
    store = LabelStore.in_data_dir(data)
    try:
        (live,) = store.open_batches("gemini")
        states = {job.job_name: job.state for job in store.batch_jobs("gemini")}
    finally:
        store.close()
    assert live.job_name == "batches/fake2" and sorted(live.images) == sorted(s.sha256 for s in samples)
    assert states == {"batches/fake1": "expired", "batches/fake2": "submitted"}
    gemini.batch_final_state = "BATCH_STATE_SUCCEEDED"
    done = label_with_teachers(samples, config, data)
    assert len(done.labeled) == 3 and gemini.requests == 6


def test_a_blocked_batch_answer_is_recorded_and_not_submitted_again(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 3)
    refused = _jpeg_sha(samples[0])
    gemini.faults = lambda call: "blocked" if call.image_sha == refused else None
    gemini.batch_running_polls = 0
    data, config = tmp_path / "data", LabelConfig(labeler="gemini", batch=True)
    label_with_teachers(samples, config, data)
    collected = label_with_teachers(samples, config, data)
    assert len(collected.labeled) == 2 and collected.failed[0].reason.startswith("blocked by gemini")
    label_with_teachers(samples, config, data)
    assert gemini.requests == 3 and len(gemini.batches) == 1


def test_labeling_in_shards_shares_one_store_without_losing_or_duplicating_an_answer(tmp_path, gemini):
    from motioncoach.teachers.shards import (
        merge_label_reports,
        merge_label_stores,
        requests_today,
        seed_shard_store,
        shard_config,
        shard_samples,
    )

    samples = make_samples(tmp_path / "photos", 30)
    home = tmp_path / "data"
    config = LabelConfig(labeler="gemini", rpm=6000, daily_budget=27, max_cost=3.0, **FAST)
    label_with_teachers(samples[:5], config, home)  # an earlier run bought five labels
    gemini.reset_counters()
    shards = shard_samples(samples + samples[:3], 3)  # a repeated image is still in one shard only
    assert sorted(s.sha256 for shard in shards for s in shard) == sorted(s.sha256 for s in samples)
    reports = []
    for index, shard in enumerate(shards):
        own = tmp_path / f"shard-{index}"
        seed_shard_store(home / STORE_FILE, own / STORE_FILE)
        limits = shard_config(config, len(shards), requests_today(own / STORE_FILE, config))
        # Each shard gets a third of the 6,000 requests a minute and of the $3; of the day's budget of 27,
        # five are spent already and the 22 left are shared out whole: 7 each, so a shard stops at 12.
        assert (limits.rpm, limits.daily_budget, limits.max_cost) == (2000, 12, 1.0)
        reports.append(label_with_teachers(shard, limits, own))
    merge_label_stores(home / STORE_FILE, [tmp_path / f"shard-{i}" / STORE_FILE for i in range(3)])
    # A retried merge (its first try committed the store, not the shards' removal) counts nothing again.
    merge_label_stores(home / STORE_FILE, [tmp_path / f"shard-{i}" / STORE_FILE for i in range(2)])
    report = merge_label_reports(samples, reports)
    assert [o.sample.sha256 for o in report.outcomes] == [s.sha256 for s in samples]
    assert len(report.labeled) == 26 and len(report.having("deferred")) == 4  # 5 from the store, 3 x 7 asked
    assert report.usage[0]["requests"] == 21 == gemini.requests and report.usage[0]["from_store"] == 5
    assert "daily budget" in report.usage[0]["stop_reason"]
    store = LabelStore.in_data_dir(home)
    try:
        assert store.requests_today("gemini") == 26  # 5 + 21, each request counted once
    finally:
        store.close()
    store = LabelStore.in_data_dir(home)
    try:
        assert [len(store.labels_of(s.sha256)) for s in samples].count(1) == 26  # one row each, none twice
    finally:
        store.close()
    gemini.reset_counters()
    again = label_with_teachers(samples, config.model_copy(update={"daily_budget": None}), home)
    assert len(again.labeled) == 30 and gemini.requests == 4  # only the four the budget left


def test_an_online_run_collects_open_batch_jobs_and_never_pays_twice_for_their_images(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 4)
    data = tmp_path / "data"
    label_with_teachers(samples[:3], LabelConfig(labeler="gemini", batch=True), data)  # a job of three
    online = LabelConfig(labeler="gemini", **FAST)
    running = label_with_teachers(samples, online, data)  # the job reports RUNNING: its images wait
    assert gemini.requests == 3 + 1 and len(running.labeled) == 1 and len(running.having("deferred")) == 3
    assert "3 images wait in Gemini batch jobs submitted earlier" in running.usage[0]["stop_reason"]
    collected = label_with_teachers(samples, online, data)
    assert len(collected.labeled) == 4 and gemini.requests == 4  # collected, not asked again
    assert set(gemini.requests_per_image.values()) == {1}


def test_cues_a_coach_would_sign_reach_the_dataset_and_mismatched_drawings_do_not(tmp_path, gemini):
    from motioncoach.dataset import build_dataset

    samples = make_samples(tmp_path / "photos", 5)
    answers = [None, "midline", "abstain", "wrong_joint", "no_change"]
    by_image = {_jpeg_sha(s): fault for s, fault in zip(samples, answers, strict=True)}
    gemini.faults = lambda call: by_image[call.image_sha]
    report = label_with_teachers(samples, LabelConfig(labeler="gemini", **FAST), tmp_path / "data")
    labeled = {o.sample.sha256: o.label for o in report.labeled}
    sided, midline, abstained = (labeled[s.sha256] for s in samples[:3])
    assert sided.feedback_points[0].coaching_script == "Bend your LEFT knee a little more."
    assert midline.feedback_points[0].coaching_script == "Keep your back flat and your chest up."
    assert abstained.status == "low_confidence" and abstained.feedback_points == []
    reasons = {o.sample.sha256: o.reason for o in report.failed}
    assert reasons[samples[3].sha256] == (
        "invalid answer: not grounded: feedback point 1: the script names the left knee but the vectors start "
        "at the right shoulder (labeling.max_asks_per_image reached: asked 3 times; asked again when the prompt, "
        "the model or the limit changes)"
    )
    assert "Target turns only 0.0 degrees from Current: it asks for no change" in reasons[samples[4].sha256]
    assert gemini.requests == 3 + 2 * 3  # a rejected drawing is asked again (invalid_retries), then recorded
    dataset = build_dataset(report.labeled, tmp_path / "data")
    rows = [json.loads(line) for line in dataset.path.read_text().splitlines()]
    assert dataset.rows == 3 and sum('"low_confidence"' in r["messages"][-1]["content"] for r in rows) == 1


def test_consensus_on_abstentions_and_labels_without_corrections(tmp_path, gemini, openrouter):
    samples = make_samples(tmp_path / "photos", 2)
    abstains = _jpeg_sha(samples[0])
    gemini.faults = lambda call: "abstain" if call.image_sha == abstains else None
    openrouter.faults = lambda call: "abstain"  # agrees on the first photo, not on the second
    report = label_with_teachers(samples, LabelConfig(labeler="consensus", **FAST), tmp_path / "data")
    assert [o.status for o in report.outcomes] == ["labeled", "disagreed"]
    assert report.outcomes[0].label.abstained
    assert report.outcomes[1].reason == "one teacher says success, the other low_confidence"


def _real_pose_samples(folder: Path, count: int, pose: str = "bus, middle") -> list[PoseSample]:
    """Distinct small photos, each with the keypoints yolo11n-pose found on a real person."""
    from tests.real_poses import detected

    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for index in range(count):
        path = folder / f"person_{index:02d}.png"
        Image.fromarray(rng.integers(0, 255, (54, 40, 3), dtype=np.uint8)).save(path)
        samples.append(detected(pose, "lunge").model_copy(update={"sha256": file_sha256(path), "source_path": path}))
    return samples


def test_a_teachers_mix_keeps_what_a_coach_would_sign_in_order_and_rejects_the_rest_with_reasons(tmp_path, gemini):
    from motioncoach.dataset import build_dataset
    from motioncoach.labels.geometry import measure
    from tests.drawing import _angle, _px, _turned, label, point

    samples = _real_pose_samples(tmp_path / "photos", 9)
    pose = samples[0]  # the same real pose in every photo: the left knee at 173 degrees, nearly straight

    def closing(anchor: str, along: str, other: str, degrees: float) -> float:
        at, end, ref = _px(pose, anchor), _px(pose, along), _px(pose, other)
        limb, ref = (end[0] - at[0], end[1] - at[1]), (ref[0] - at[0], ref[1] - at[1])
        return degrees if _angle(_turned(limb, degrees), ref) < _angle(limb, ref) else -degrees

    bend = closing("left_knee", "left_ankle", "left_hip", 30)
    knee = {"anchor": "left_knee", "along": "left_ankle"}

    def knee_point(script: str, severity: str, turn: float, **extra) -> dict:
        return point(pose, script, severity, knee["anchor"], knee["along"], turn, **extra)

    elbow = point(pose, "Bend your RIGHT elbow a little.", "minor", "right_elbow", "right_wrist",
                  closing("right_elbow", "right_wrist", "right_shoulder", 20))  # fmt: skip
    lift = point(pose, "Raise your LEFT arm a little.", "intermediate", "left_shoulder", "left_elbow",
                 -closing("left_shoulder", "left_elbow", "left_hip", 20))  # fmt: skip
    answers = [
        label(knee_point("Bend your LEFT knee a little more.", "intermediate", bend)),  # agrees with its verb
        label(knee_point("Straighten your LEFT knee.", "intermediate", bend)),  # points the other way
        label(
            knee_point("Bend your LEFT knee deeply.", "major", closing("left_knee", "left_ankle", "left_hip", 179))
        ),  # the shin folded through the thigh
        label(knee_point("Maintain proper form and keep your body aligned.", "minor", bend), score=92),  # generic
        label(knee_point("Bend your LEFT knee fifteen degrees, to 160.", "minor", bend)),  # digits in a spoken cue
        label(knee_point("Bend your LEFT knee.", "minor", bend), elbow, score=99),  # the score contradicts them
        label(knee_point("Bend your LEFT knee a little more.", "minor", bend), error_message=""),  # blank message
        label(
            point(
                pose,
                "Lift your hips in line with your shoulders.",
                "major",
                "left_shoulder",
                "left_hip",
                closing("left_shoulder", "left_hip", "left_elbow", 12),
            )
        ),  # a hips cue at a shoulder  # fmt: skip
        label(
            elbow, knee_point("Bend your LEFT knee more.", "major", bend, positive_note="The foot is planted."), lift
        ),  # severities, minor first: stored major first  # fmt: skip
    ]
    by_image = {_jpeg_sha(s): json.dumps(a) for s, a in zip(samples, answers, strict=True)}
    gemini.answer = lambda call: by_image[call.image_sha]
    report = label_with_teachers(samples, LabelConfig(labeler="gemini", invalid_retries=1, **FAST), tmp_path / "data")

    outcomes = [next(o for o in report.outcomes if o.sample.sha256 == s.sha256) for s in samples]
    assert [o.status for o in outcomes] == ["labeled", "failed", "failed", "failed", "failed", "labeled", "labeled",
                                            "labeled", "labeled"]  # fmt: skip
    reasons = [o.reason for o in outcomes]
    assert reasons[1].startswith(
        f"invalid answer: not grounded: feedback point 1: the script says 'straighten' but the Target closes the left "
        f"knee from {measure(pose)['left_knee'].degrees:.0f} to "
    )
    assert reasons[2] == (
        "invalid answer: not grounded: feedback point 1: the Target folds the shin through the thigh at the left knee"
    )
    assert reasons[3].startswith(
        "invalid answer: schema: feedback_points.0: Value error, coaching_script names no body part the checks can "
        "locate"
    )
    assert "coaching_script is spoken aloud: write it without digits or degree signs" in reasons[4]
    # A score that contradicts the corrections is no reason to pay again: the label carries the app's score,
    # 100 less 2 for each of its two minor corrections.
    assert outcomes[5].label.progress_score == 96 and reasons[5] is None
    assert gemini.requests == 5 + 4 * 2  # a rejected answer is asked again once, then recorded
    assert report.usage[0]["fixes"] == {"score": 5}  # every answer here scored 50, whatever it corrected
    labeled = [o.label for o in outcomes if o.status == "labeled"]
    assert labeled[2].error_message is None
    assert labeled[3].feedback_points[0].coaching_script == "Lift your hips in line with your shoulders."
    assert [p.severity for p in labeled[4].feedback_points] == ["major", "intermediate", "minor"]

    dataset = build_dataset(report.labeled, tmp_path / "data")
    rows = {
        r["images"][0]: json.loads(r["messages"][-1]["content"])
        for r in map(json.loads, dataset.path.read_text().splitlines())
    }
    assert dataset.rows == 5
    trained = rows[f"images/{samples[8].sha256}.png"]
    assert [p["severity"] for p in trained["feedback_points"]] == ["major", "intermediate", "minor"]
    assert trained["feedback_points"][0]["positive_note"] == "The foot is planted."
    assert trained["feedback_points"][0]["coaching_script"] == "Bend your LEFT knee more."
    assert rows[f"images/{samples[6].sha256}.png"]["error_message"] is None
    assert {p["severity"] for r in rows.values() for p in r["feedback_points"]} <= {"major", "intermediate", "minor"}


def test_labels_stored_under_schema_2_are_stale_kept_until_relabeled_and_never_lost(tmp_path, gemini):
    from motioncoach.teachers.labeling import stored_teacher
    from motioncoach.teachers.relabel import current_labels, find_candidates
    from motioncoach.teachers.store import LabelKey
    from tests.fakes import grounded_label

    (sample,) = make_samples(tmp_path / "photos", 1)
    data, config = tmp_path / "data", LabelConfig(labeler="gemini", **FAST)
    teacher = stored_teacher("gemini", config)
    key = LabelKey.of(sample, "gemini", teacher.model_id, teacher.generation_params())
    old_key = key.model_copy(update={"schema_version": "2"})
    assert old_key.id != key.id  # the schema version is part of the key
    schema_2 = json.loads(grounded_label("").to_json())  # a label as schema 2 stored it: no severities
    for point in schema_2["feedback_points"]:
        del point["severity"], point["positive_note"]
    store = LabelStore.in_data_dir(data)
    store.put(old_key, label=grounded_label(""))
    store.close()
    with sqlite3.connect(data / STORE_FILE) as db:  # the row as schema 2 wrote it
        db.execute("UPDATE labels SET label_json = ?", (json.dumps(schema_2),))
    store = LabelStore.in_data_dir(data)
    try:
        (candidate,) = find_candidates([sample], config, store, data)
    finally:
        store.close()
    assert candidate.problem == "stale"
    kept = current_labels([sample], config, data)  # nothing is sent: the stale label trains until replaced
    assert gemini.requests == 0 and kept.labeled[0].reason.startswith("stale: gemini-3-flash-preview")
    assert [p.severity for p in kept.labeled[0].label.feedback_points] == ["intermediate"]  # as the app reads it
    relabeled = label_with_teachers([sample], config.model_copy(update={"rebuy": True}), data)
    assert gemini.requests == 1 and relabeled.labeled[0].label.feedback_points[0].severity == "intermediate"
    with sqlite3.connect(data / STORE_FILE) as db:
        assert sorted(db.execute("SELECT schema_version, status FROM labels")) == [("2", "labeled"), ("3", "labeled")]


def test_rpm_gives_each_request_a_slot_of_its_own():
    """--rpm 600 is a slot every 0.1 s: eight requests asked for at once start 0, 0.1, ... 0.7 s later; one asked
    for after a quiet spell starts at once. (The spacing as it arrives at a teacher is bench/labeling_throughput.)"""
    from motioncoach.teachers.pacing import RateLimiter

    limiter = RateLimiter(600)
    assert [round(limiter.reserve(now=10.0), 3) for _ in range(8)] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert limiter.reserve(now=100.0) == 0.0
    assert RateLimiter(None).interval == 0.0  # no --rpm: no waiting


def test_batch_jobs_are_split_at_batch_job_requests(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 10)
    config = LabelConfig(labeler="gemini", batch=True, batch_job_requests=4)
    submitted = label_with_teachers(samples, config, tmp_path / "data")
    assert [len(job["responses"]) for job in gemini.batches.values()] == [4, 4, 2]
    assert (
        "10 images wait in Gemini batch job(s) batches/fake1 (4), batches/fake2 (4), batches/fake3 (2)"
        in (submitted.usage[0]["stop_reason"])
    )
    gemini.batch_running_polls = 0
    label_with_teachers(samples, config, tmp_path / "data")
    collected = label_with_teachers(samples, config, tmp_path / "data")
    assert len(collected.labeled) == 10 and gemini.requests == 10
