"""The teacher never pays twice: answers read forward-compatibly, batch answers kept under the key they
were asked with, asks bounded per image, batch jobs that are idempotent, a store that keeps up."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sqlite3
import time
from pathlib import Path

import pytest
from PIL import Image

from motioncoach.config import LabelConfig
from motioncoach.errors import ConfigurationError
from motioncoach.hashing import file_sha256
from motioncoach.labels.store import write_label_log
from motioncoach.pose.cache import CACHE_FILE_NAME, CacheEntry, PoseCache
from motioncoach.records import PoseSample
from motioncoach.teachers.batch import display_name
from motioncoach.teachers.engine import reached_ask_limit
from motioncoach.teachers.gemini import INLINE_BATCH_BUDGET, GeminiTeacher
from motioncoach.teachers.labeling import label_with_teachers
from motioncoach.teachers.pricing import estimate_input_tokens
from motioncoach.teachers.relabel import current_labels, find_candidates, relabel_data_dir
from motioncoach.teachers.request import build_request, encode_image
from motioncoach.teachers.store import STORE_FILE, LabelKey, LabelStore
from motioncoach.teachers.store_copy import store_on_local_disk
from tests.fakes import GeminiFake, OpenRouterFake
from tests.test_labeling import KEY, OR_KEY, make_samples

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}
BATCH = LabelConfig(labeler="gemini", batch=True, **FAST)
PARAMS = {"thinking_level": "low", "temperature": None}  # what the default Gemini 3 labels are keyed with


@pytest.fixture
def gemini(monkeypatch):
    with GeminiFake(api_key=KEY, retry_after=0.05, batch_running_polls=0) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        yield fake


def jpeg_sha(sample: PoseSample) -> str:
    """The sha256 of the image bytes as the teacher receives them (what the fake's calls name)."""
    return hashlib.sha256(encode_image(sample.source_path)).hexdigest()


def rows_of(data_dir: Path, samples: list[PoseSample]) -> dict[str, list]:
    store = LabelStore.in_data_dir(data_dir)
    try:
        return {s.sha256: store.labels_of(s.sha256) for s in samples}
    finally:
        store.close()


def jobs_of(data_dir: Path):
    store = LabelStore.in_data_dir(data_dir)
    try:
        return store.batch_jobs("gemini")
    finally:
        store.close()


def big_samples(folder: Path, count: int) -> list[PoseSample]:
    """make_samples' poses on 768 x 576 photos of noise: about 400 KB of JPEG each, as a busy real photo."""
    samples = []
    for sample in make_samples(folder, count):
        path = sample.source_path.with_suffix(".jpg")
        noise = random.Random(sample.sha256).randbytes(768 * 576 * 3)
        Image.frombytes("RGB", (768, 576), noise).save(path, "JPEG", quality=95)
        samples.append(sample.model_copy(update={"source_path": path, "sha256": file_sha256(path), "width": 768,
                                                 "height": 576}))  # fmt: skip
    return samples


# ---- Answers with fields the SDK does not know yet -------------------------------------------------------


def test_answers_carrying_unknown_fields_label_every_image_at_the_first_ask_with_their_cost(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 6)
    report = label_with_teachers(samples, LabelConfig(labeler="gemini", **FAST), tmp_path / "data")
    assert gemini.last_response["serviceTier"] == "standard"  # every answer carries fields google-genai lacks
    assert len(report.labeled) == 6 and gemini.requests == 6 and set(gemini.requests_per_image.values()) == {1}
    rows = [row for found in rows_of(tmp_path / "data", samples).values() for row in found]
    assert [r.asks for r in rows] == [1] * 6
    usage = report.usage[0]
    assert usage["cost_usd"] == pytest.approx(sum(r.cost_usd for r in rows), abs=1e-6) and usage["cost_usd"] > 0
    assert usage["input_tokens"] == sum(r.input_tokens for r in rows) > 6 * 1120


def test_inline_batch_results_with_unknown_fields_are_all_recorded_with_their_cost(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 3)
    label_with_teachers(samples, BATCH, tmp_path / "data")
    collected = label_with_teachers(samples, BATCH, tmp_path / "data")
    assert len(collected.labeled) == 3 and gemini.requests == 3 and collected.usage[0]["cost_usd"] > 0
    assert [job.state for job in jobs_of(tmp_path / "data")] == ["collected"]


def test_a_batch_results_file_over_20_mb_with_unknown_fields_is_all_recorded(tmp_path, gemini):
    """At the size users run: a job over Gemini's 20 MB inline limit goes as a JSONL file through the
    Files API, uploaded once however often the create is tried, and its results come back as a file whose
    lines hold fields the SDK does not know."""
    samples = big_samples(tmp_path / "photos", 48)
    gemini.batch_create_faults = ["unavailable"]  # the first create is refused: the second reuses the upload
    first = label_with_teachers(samples, BATCH, tmp_path / "data")
    uploaded = [f for f in gemini.files.values() if not f["generated"]]
    assert len(uploaded) == 1 and len(uploaded[0]["data"]) > 20_000_000 > INLINE_BATCH_BUDGET
    assert gemini.batch_creates == 2 and len(gemini.batches) == 1
    assert len(first.having("deferred")) == 48
    collected = label_with_teachers(samples, BATCH, tmp_path / "data")
    results = next(f for f in gemini.files.values() if f["generated"])["data"].decode()
    assert results.count('"serviceTier": "standard"') == 48
    assert len(collected.labeled) == 48 and gemini.requests == 48 and collected.usage[0]["cost_usd"] > 0
    assert not gemini.errors


# ---- Batch answers kept: every entry, under the key it was asked with --------------------------------------


def test_a_job_for_60_images_collected_by_a_run_asking_for_20_records_all_60(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 60)
    data = tmp_path / "data"
    label_with_teachers(samples, BATCH, data)
    assert gemini.requests == 60 and len(gemini.batches) == 1
    fewer = label_with_teachers(samples[:20], BATCH, data)  # a smaller --max-samples, or the relabel's budget
    assert len(fewer.labeled) == 20 and len(fewer.outcomes) == 20
    assert all(rows[0].status == "labeled" for rows in rows_of(data, samples).values())  # all 60 recorded
    assert [(job.state, len(job.recorded)) for job in jobs_of(data)] == [("collected", 60)]
    sent = gemini.http_requests
    full = label_with_teachers(samples, BATCH, data)
    online = label_with_teachers(samples, LabelConfig(labeler="gemini"), data)
    assert len(full.labeled) == len(online.labeled) == 60 and gemini.http_requests == sent  # nothing sent


def test_entries_that_name_no_image_are_placed_by_their_order_when_all_are_there(tmp_path, gemini):
    """Gemini writes the responses in the order of the requests: entries without their key still land."""
    samples = make_samples(tmp_path / "photos", 3)
    gemini.echo_keys = False
    label_with_teachers(samples, BATCH, tmp_path / "data")
    collected = label_with_teachers(samples, BATCH, tmp_path / "data")
    assert len(collected.labeled) == 3 and gemini.requests == 3 and len(gemini.batches) == 1


def test_batch_answers_are_stored_under_the_key_they_were_submitted_with(tmp_path, gemini):
    """Answers to the old question must not pass as answers to the new one (a changed prompt, model or
    parameter): they are recorded under the job's key, stale, and the new key is asked for."""
    samples = make_samples(tmp_path / "photos", 3)
    data = tmp_path / "data"
    label_with_teachers(samples, BATCH, data)  # asked with the model's default temperature
    warmer = BATCH.model_copy(update={"temperature": 0.5})
    second = label_with_teachers(samples, warmer, data)  # collects the first job, then asks the new question
    assert not second.labeled and len(second.having("deferred")) == 3 and gemini.requests == 6
    for rows in rows_of(data, samples).values():
        assert [(json.loads(r.key.params)["temperature"], r.status) for r in rows] == [(None, "labeled")]
    third = label_with_teachers(samples, warmer, data)
    assert len(third.labeled) == 3 and gemini.requests == 6
    for rows in rows_of(data, samples).values():
        assert sorted(json.loads(r.key.params)["temperature"] or 0 for r in rows) == [0, 0.5]


# ---- Asks bounded per image ---------------------------------------------------------------------------------


def write_pose_cache(data_dir: Path, samples: list[PoseSample]) -> None:
    """The YOLO cache a pose filter run would have left for these samples: what the relabel reads."""
    cache = PoseCache(data_dir / CACHE_FILE_NAME)
    for s in samples:
        keypoints = [(k.name, k.x, k.y, k.conf) for k in s.keypoints]
        entry = CacheEntry(sha256=s.sha256, source_path=str(s.source_path), activity=s.activity, outcome="kept",
                           persons=1, width=s.width, height=s.height, box_conf=s.box_conf, keypoints=keypoints,
                           weights="test")  # fmt: skip
        cache.record("test", entry)
    cache.save()


@pytest.mark.parametrize("batch", [False, True], ids=["online", "batch"])
def test_always_invalid_answers_are_asked_at_most_max_asks_over_four_runs_and_a_relabel(tmp_path, gemini, batch):
    samples = make_samples(tmp_path / "photos", 3)
    data = tmp_path / "data"
    write_pose_cache(data, samples)
    broken = jpeg_sha(samples[0])
    gemini.faults = lambda call: "truncated" if call.image_sha == broken else None
    config = LabelConfig(labeler="gemini", batch=batch, invalid_retries=1, max_asks_per_image=3, **FAST)
    reports = [label_with_teachers(samples, config, data) for _ in range(4)]
    result = relabel_data_dir(config, data)
    assert gemini.requests_per_image[broken] == 3 and gemini.requests == 3 + 2  # the two good ones once
    (stored,) = rows_of(data, samples)[samples[0].sha256]
    assert (stored.status, stored.asks) == ("failed", 3) and stored.reason.startswith("invalid answer: not valid")
    (failed,) = reports[-1].failed
    assert failed.sample.sha256 == samples[0].sha256 and reached_ask_limit(failed.reason)
    assert [(c.problem, c.asks) for c in result.candidates] == [("invalid", 3)] and result.chosen == []
    # A new limit is a new decision: the image is asked again, once.
    label_with_teachers(samples, config.model_copy(update={"max_asks_per_image": 4}), data)
    if batch:
        label_with_teachers(samples, config.model_copy(update={"max_asks_per_image": 4}), data)
    assert gemini.requests_per_image[broken] == 4


def test_disputed_consensus_labels_are_asked_again_only_within_the_limit(tmp_path, gemini, monkeypatch):
    samples = make_samples(tmp_path / "photos", 2)
    data = tmp_path / "data"
    write_pose_cache(data, samples)
    disputed = jpeg_sha(samples[0])

    def answer(call):
        from tests.fakes import grounded_label

        label = grounded_label(call.prompt)
        if call.image_sha == disputed:  # OpenRouter always finds nothing to correct where Gemini corrects
            label = label.model_copy(update={"feedback_points": []})
        return label.model_dump_json()

    with OpenRouterFake(api_key=OR_KEY, answer=answer) as openrouter:
        monkeypatch.setenv("OPENROUTER_BASE_URL", openrouter.base_url)
        monkeypatch.setenv("OPENROUTER_API_KEY", OR_KEY)
        config = LabelConfig(labeler="consensus", max_asks_per_image=2, **FAST)
        write_label_log(label_with_teachers(samples, config, data), data)  # what the dataset run leaves
        nights = []
        for _ in range(3):
            nights.append(relabel_data_dir(config, data))
            write_label_log(current_labels(nights[-1].samples, config, data), data)
    assert [[(c.problem, c.asks) for c in night.chosen] for night in nights] == [[("disagreement", 1)], [], []]
    assert [c.asks for c in nights[-1].candidates] == [2]  # still disputed, and asked enough
    assert gemini.requests_per_image[disputed] == openrouter.requests_per_image[disputed] == 2
    assert gemini.requests == openrouter.requests == 3


def test_the_relabel_asks_stale_and_never_asked_images_before_repeat_failures(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 4)
    data = tmp_path / "data"
    failing, stale = jpeg_sha(samples[0]), samples[1]
    gemini.faults = lambda call: "truncated" if call.image_sha == failing else None
    config = LabelConfig(labeler="gemini", invalid_retries=0, max_asks_per_image=5, **FAST)
    old_model = config.model_copy(update={"gemini_model": "gemini-2.5-flash"})
    label_with_teachers([stale], old_model, data)  # labeled by an older model: stale now
    for _ in range(2):  # the failing image fails again and again, the newest problem each time
        label_with_teachers(samples[:1], config, data)
    store = LabelStore.in_data_dir(data)
    try:
        found = find_candidates(samples, config, store, data)
    finally:
        store.close()
    assert [(c.sample.sha256, c.problem, c.asks) for c in found] == [
        *sorted([(stale.sha256, "stale", 0)]), *[(s.sha256, "missing", 0) for s in samples[2:]],
        (samples[0].sha256, "invalid", 2),
    ]  # fmt: skip


# ---- Idempotent batch jobs ------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["unavailable_after_create", "hang_after_create"])
def test_a_create_that_fails_after_creating_the_job_leads_to_no_second_job(tmp_path, gemini, fault):
    samples = make_samples(tmp_path / "photos", 4)
    data = tmp_path / "data"
    gemini.batch_create_faults = [fault]
    config = BATCH.model_copy(update={"timeout_s": 1.0})
    submitted = label_with_teachers(samples, config, data)
    assert len(gemini.batches) == 1 and gemini.batch_creates == 1 and gemini.requests == 4
    assert "4 images wait in Gemini batch job(s) batches/fake1 (4)" in submitted.usage[0]["stop_reason"]
    (job,) = jobs_of(data)
    assert (job.job_name, job.state, job.display_name) == (
        "batches/fake1",
        "submitted",
        gemini.batches[job.job_name]["displayName"],
    )
    collected = label_with_teachers(samples, config, data)
    assert len(collected.labeled) == 4 and len(gemini.batches) == 1 and gemini.requests == 4


def test_a_crash_between_create_and_recording_the_job_name_is_recovered_by_the_display_name(tmp_path, gemini):
    """The record a run leaves before batches.create, and the job the crashed run created: the next run
    finds the job by its display name and collects it."""
    samples = make_samples(tmp_path / "photos", 3)
    data = tmp_path / "data"
    keys = [LabelKey.of(s, "gemini", "gemini-3-flash-preview", PARAMS) for s in samples]
    name = display_name(keys)
    store = LabelStore.in_data_dir(data)
    store.add_batch_intent(name, keys, samples, estimated_cost_usd=0.01)
    store.close()
    teacher = GeminiTeacher(api_key=KEY)

    async def create():
        try:
            return await teacher.submit_batch([build_request(s) for s in samples], name)
        finally:
            await teacher.aclose()

    assert asyncio.run(create()) == "batches/fake1"  # then the process died
    gemini.reset_counters()
    report = label_with_teachers(samples, BATCH, data)
    assert len(report.labeled) == 3 and gemini.batch_creates == 1 and gemini.requests == 0
    assert [(job.job_name, job.state) for job in jobs_of(data)] == [("batches/fake1", "collected")]


def test_a_recorded_job_that_was_never_created_gives_its_images_back(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 2)
    data = tmp_path / "data"
    gemini.batch_create_faults = ["unavailable"] * 2  # refused before any job exists
    gemini.batch_list_faults = ["unavailable"]  # and the lookup after the first refusal fails too
    first = label_with_teachers(samples, BATCH.model_copy(update={"max_attempts": 3}), data)
    assert "could not be looked up" in first.usage[0]["stop_reason"] and not gemini.batches
    assert [job.state for job in jobs_of(data)] == ["creating"]  # kept: the job may exist
    second = label_with_teachers(samples, BATCH, data)  # looks it up, finds none, submits once
    assert len(gemini.batches) == 1 and len(second.having("deferred")) == 2
    assert [job.state for job in jobs_of(data)] == ["submitted"]
    assert len(label_with_teachers(samples, BATCH, data).labeled) == 2 and gemini.requests == 2


def test_a_job_whose_state_cannot_be_read_is_kept_and_a_rotated_key_stops_the_run(tmp_path, gemini, monkeypatch):
    samples = make_samples(tmp_path / "photos", 3)
    data = tmp_path / "data"
    label_with_teachers(samples, BATCH, data)
    gemini.batch_read_faults = ["unavailable", "not_found"]
    for _ in range(2):  # a 503, then a 404: neither says the job is gone for good
        kept = label_with_teachers(samples, BATCH, data)
        assert len(kept.having("deferred")) == 3 and "could not be read" in kept.usage[0]["stop_reason"]
    gemini.api_key = "rotated-key-0123456789"
    with pytest.raises(ConfigurationError, match="check GEMINI_API_KEY") as refused:
        label_with_teachers(samples, BATCH, data)
    assert "stays recorded" in str(refused.value) and KEY not in str(refused.value)
    monkeypatch.setenv("GEMINI_API_KEY", "rotated-key-0123456789")
    collected = label_with_teachers(samples, BATCH, data)
    assert len(collected.labeled) == 3 and len(gemini.batches) == 1 and gemini.requests == 3


def test_a_job_that_keeps_answering_404_is_given_back_after_a_bound(tmp_path, gemini):
    from motioncoach.teachers.batch import MAX_MISSES

    samples = make_samples(tmp_path / "photos", 3)
    data = tmp_path / "data"
    label_with_teachers(samples, BATCH, data)
    del gemini.batches["batches/fake1"]  # gone: every read of it answers 404
    for _ in range(MAX_MISSES - 1):
        kept = label_with_teachers(samples, BATCH, data)
        assert len(kept.having("deferred")) == 3 and "could not be read" in kept.usage[0]["stop_reason"]
        assert len(gemini.batches) == 0
    label_with_teachers(samples, BATCH, data)  # the bound: the images go to a new job
    assert [job.state for job in jobs_of(data)] == ["lost", "submitted"] and len(gemini.batches) == 1
    assert len(label_with_teachers(samples, BATCH, data).labeled) == 3


def test_jobs_go_in_a_rolling_window_the_tiers_queue_takes_and_wait_collects_every_one(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 10)
    data = tmp_path / "data"
    per_request = estimate_input_tokens("gemini-3-flash-preview", build_request(samples[0]))
    window = int(per_request * 4.5)  # room for two jobs of two
    gemini.queued_token_limit = window  # the service refuses a job past its queue, as Gemini's tiers do
    gemini.batch_running_polls = 1
    config = BATCH.model_copy(update={"batch_job_requests": 2, "batch_queued_tokens": window})

    first = label_with_teachers(samples, config, data)
    assert len(gemini.batches) == 2 and len(first.having("deferred")) == 10
    assert "Gemini's batch queue is full" in first.usage[0]["stop_reason"]

    waited = label_with_teachers(samples, config.model_copy(update={"wait": True, "batch_poll_s": 0.01}), data)
    assert len(waited.labeled) == 10 and not waited.having("deferred")
    assert len(gemini.batches) == 5 and gemini.max_queued_tokens <= window and not gemini.errors
    assert set(gemini.requests_per_image.values()) == {1}
    assert {job.state for job in jobs_of(data)} == {"collected"}


def test_only_a_job_gemini_reports_ended_gives_its_images_back(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 2)
    data = tmp_path / "data"
    gemini.batch_final_state = "BATCH_STATE_CANCELLED"
    label_with_teachers(samples, BATCH, data)
    label_with_teachers(samples, BATCH, data)  # the cancelled job gives its images to a new one
    assert [job.state for job in jobs_of(data)] == ["cancelled", "submitted"] and gemini.requests == 4


# ---- Models, consensus, and the store on Modal --------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True], ids=["online", "batch"])
def test_gemini_2_5_flash_labels_against_a_fake_that_refuses_a_thinking_level(tmp_path, gemini, batch):
    samples = make_samples(tmp_path / "photos", 3)
    config = LabelConfig(labeler="gemini", gemini_model="gemini-2.5-flash", batch=batch, **FAST)
    reports = [label_with_teachers(samples, config, tmp_path / "data") for _ in range(2 if batch else 1)]
    assert len(reports[-1].labeled) == 3 and gemini.requests == 3 and not reports[-1].failed
    assert reports[-1].usage[0]["model_id"] == "gemini-2.5-flash" and reports[-1].usage[0]["cost_usd"] > 0


def test_consensus_with_batch_batches_gemini_and_asks_openrouter_online(tmp_path, gemini, monkeypatch):
    samples = make_samples(tmp_path / "photos", 3)
    with OpenRouterFake(api_key=OR_KEY) as openrouter:
        monkeypatch.setenv("OPENROUTER_BASE_URL", openrouter.base_url)
        monkeypatch.setenv("OPENROUTER_API_KEY", OR_KEY)
        config = LabelConfig(labeler="consensus", batch=True, **FAST)
        first = label_with_teachers(samples, config, tmp_path / "data")
        assert len(first.having("deferred")) == 3 and openrouter.requests == 3 and len(gemini.batches) == 1
        second = label_with_teachers(samples, config, tmp_path / "data")
    assert len(second.labeled) == 3 and all(o.agreement["agree"] for o in second.labeled)
    assert gemini.requests == openrouter.requests == 3


def test_the_store_is_copied_back_as_answers_arrive_and_made_durable_on_demand(tmp_path):
    """On Modal a label shard works on a local copy: each write is copied home (and the volume
    committed) as it lands, not on a timer, so a crash loses at most what was in flight."""
    home, scratch, synced = tmp_path / "volume", tmp_path / "scratch", []
    keys = [
        LabelKey(sha256=f"{n:064x}", teacher="gemini", model_id="m", params="{}", prompt_version="v") for n in range(2)
    ]

    def home_rows() -> int:
        if not (home / STORE_FILE).exists():
            return 0
        with sqlite3.connect(home / STORE_FILE) as db:
            return db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]

    with store_on_local_disk(home, scratch, lambda: synced.append(home_rows()), every_s=3600) as working:
        store = LabelStore.in_data_dir(working)
        store.put(keys[0], reason="invalid answer: x", asks=1)
        deadline = time.monotonic() + 60
        while not synced:  # the copy thread wakes on the write, not after every_s, and commits after copying
            assert time.monotonic() < deadline, "the write was never copied home"
            time.sleep(0.02)
        assert synced[0] == 1 and home_rows() == 1  # the commit came after the copy, which held the write
        store.put(keys[1], reason="invalid answer: y", asks=1)
        store.make_durable()  # returns once the write is home
        assert home_rows() == 2
        store.close()
    assert synced[-1] == 2


# The label store as the previous version wrote it: no asks, no batch job intents, keys or samples.
PREVIOUS_SCHEMA = """
CREATE TABLE labels (
    id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, teacher TEXT NOT NULL, model_id TEXT NOT NULL,
    prompt_version TEXT NOT NULL, schema_version TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
    label_json TEXT, reason TEXT, attempts INTEGER NOT NULL DEFAULT 0, input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0, updated_at TEXT NOT NULL
);
CREATE INDEX labels_by_image ON labels (sha256, teacher);
CREATE TABLE daily_requests (day TEXT NOT NULL, teacher TEXT NOT NULL, requests INTEGER NOT NULL,
                             PRIMARY KEY (day, teacher));
CREATE TABLE batches (
    job_name TEXT PRIMARY KEY, teacher TEXT NOT NULL, model_id TEXT NOT NULL, params TEXT NOT NULL,
    prompt_version TEXT NOT NULL, schema_version TEXT NOT NULL, images TEXT NOT NULL, state TEXT NOT NULL,
    submitted_at TEXT NOT NULL
);
"""
PREVIOUS_COLUMNS = (
    "id, sha256, teacher, model_id, prompt_version, schema_version, params, status, label_json, reason, attempts, "
    "input_tokens, output_tokens, cost_usd, updated_at"
)


def test_a_store_of_the_previous_version_is_migrated_without_losing_a_label(tmp_path, gemini):
    samples = make_samples(tmp_path / "photos", 6)
    labeled, invalid, gave_up, batched = samples[:2], samples[2], samples[3], samples[4:]
    new = tmp_path / "new"
    label_with_teachers(labeled, LabelConfig(labeler="gemini"), new)
    with sqlite3.connect(new / STORE_FILE) as db:
        rows = db.execute(f"SELECT {PREVIOUS_COLUMNS} FROM labels").fetchall()
    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(old / STORE_FILE) as db:
        db.executescript(PREVIOUS_SCHEMA)
        db.executemany(f"INSERT INTO labels ({PREVIOUS_COLUMNS}) VALUES ({', '.join('?' * 15)})", rows)
        for sample, reason in ((invalid, "invalid answer: not valid JSON"), (gave_up, "gave up after 6 attempts: x")):
            key = LabelKey.of(sample, "gemini", "gemini-3-flash-preview", PARAMS)
            db.execute(
                f"INSERT INTO labels ({PREVIOUS_COLUMNS}) VALUES (?, ?, 'gemini', ?, ?, ?, ?, 'failed', NULL, ?, 3, 0, "
                "0, 0, '2026-11-30T10:00:00+00:00')",
                (key.id, key.sha256, key.model_id, key.prompt_version, key.schema_version, key.params, reason),
            )
    # A job the previous version submitted: recorded with its image hashes only.
    teacher = GeminiTeacher(api_key=KEY)

    async def submit():
        try:
            return await teacher.submit_batch([build_request(s) for s in batched], "motioncoach-earlier")
        finally:
            await teacher.aclose()

    job_name = asyncio.run(submit())
    key = LabelKey.asked_alike("gemini", "gemini-3-flash-preview", PARAMS)
    with sqlite3.connect(old / STORE_FILE) as db:
        db.execute(
            "INSERT INTO batches VALUES (?, 'gemini', ?, ?, ?, ?, ?, 'submitted', '2026-11-30T10:00:00+00:00')",
            (job_name, key.model_id, key.params, key.prompt_version, key.schema_version,
             json.dumps([s.sha256 for s in batched])),
        )  # fmt: skip
    gemini.reset_counters()
    migrated = rows_of(old, samples)  # opening the store adds the columns: a row holding an answer is one ask
    assert [r.asks for s in (*labeled, invalid, gave_up) for r in migrated[s.sha256]] == [1, 1, 1, 0]

    report = label_with_teachers(samples, BATCH, old)  # collects the old job, submits what has no label
    found = rows_of(old, samples)
    assert [(r.status, r.asks) for s in labeled for r in found[s.sha256]] == [("labeled", 1)] * 2
    assert [r.label for s in labeled for r in found[s.sha256]] == [
        r.label for s in labeled for r in rows_of(new, [s])[s.sha256]
    ]
    assert [(r.status, r.asks) for r in found[invalid.sha256]] == [("failed", 1)]  # an answer: one ask
    assert [(r.status, r.asks) for s in batched for r in found[s.sha256]] == [("labeled", 1)] * 2
    assert {o.sample.sha256 for o in report.labeled} == {s.sha256 for s in labeled + batched}
    # The invalid one and the one that never got an answer are submitted again; nothing labeled is.
    assert gemini.requests == 2 and set(gemini.requests_per_image) == {jpeg_sha(invalid), jpeg_sha(gave_up)}
    assert [(job.job_name, job.state, job.samples) for job in jobs_of(old)][0] == (job_name, "collected", None)
