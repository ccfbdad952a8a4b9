"""The dataset flow with a paid teacher: preflight, failure policy, and a healthy rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flows.dataset import build_dataset
from motioncoach.config import LabelConfig
from motioncoach.errors import ConfigurationError
from motioncoach.labels.policy import LabelingFailed
from tests.fakes import GeminiFake

KEY = "fake-gemini-flow-secret-0123456789abcdef"


@pytest.mark.e2e
def test_a_missing_key_fails_before_any_work(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "OPENROUTER_API_KEY")}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--labeler", "gemini", "--data-dir", str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "GEMINI_API_KEY is not set" in result.stderr and "--labeler rules" in result.stderr
    # Nothing ran: no flow run, no task, no download logged; the one line is the error.
    assert result.stdout == "" and result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "data").exists()


def test_the_flow_checks_keys_first_too(tmp_path, prefect_server, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENROUTER_API_KEY is not set") as refused:
        build_dataset(labeler="openrouter", data_dir=tmp_path / "data")
    assert "or create the Prefect Secret block 'openrouter-api-key'" in str(refused.value)
    assert not (tmp_path / "data").exists()


def test_a_teacher_failing_every_call_fails_the_run_and_a_healthy_one_completes_it(
    tmp_path, prefect_server, monkeypatch
):
    from prefect.artifacts import Artifact

    data = tmp_path / "data"
    labeling = LabelConfig(labeler="gemini", max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.02)
    with GeminiFake(api_key=KEY, faults=lambda call: "server_error") as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        state = build_dataset(labeler="gemini", data_dir=data, labeling=labeling, return_state=True)
        assert state.is_failed()
        with pytest.raises(LabelingFailed, match="could not be labeled"):
            state.result()
        failed_requests = fake.requests
        fake.faults = None
        fake.reset_counters()
        summary = build_dataset(labeler="gemini", data_dir=data, labeling=labeling)
    assert failed_requests == 3 * 2  # three kept photos, two attempts each
    # Every answer carries fields google-genai does not know yet: each image is labeled at the first ask.
    assert fake.last_response["serviceTier"] == "standard"
    assert summary.train.rows + summary.val.rows == 3 and fake.requests == 3
    (cost,) = json.loads(Artifact.get("labeling-cost").data)
    assert cost["requests"] == 3 and cost["cost_usd"] > 0 and cost["input_tokens"] > 3 * 1120
    rows = [json.loads(line) for line in (data / "labels.jsonl").read_text().splitlines()]
    assert {r["status"] for r in rows} == {"labeled"} and all(r["model_id"] == "gemini-3-flash-preview" for r in rows)
    shown = [part for row in json.loads(Artifact.get("sample-labels").data) for part in row["coaching"].split(" | ")]
    assert shown and all(part.split(": ", 1)[0] in ("major", "intermediate", "minor") for part in shown), shown
    for path in data.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes()


@pytest.mark.e2e
def test_a_batch_run_over_20_mb_submits_then_collects_then_sends_nothing(tmp_path, prefect_server):
    """`motioncoach dataset --batch` on 160 photos whose requests add up to well over 20 MB."""
    from prefect.settings import PREFECT_API_URL

    from tests.photos import single_person_photos

    photos = single_person_photos(tmp_path / "photos", 160)
    data = tmp_path / "data"
    command = [
        sys.executable, "-m", "cli.main", "dataset", "--source", str(photos), "--labeler", "gemini", "--batch",
        "--max-samples", "160", "--data-dir", str(data),
    ]  # fmt: skip
    with GeminiFake(api_key=KEY, batch_running_polls=0) as fake:
        env = os.environ | {"GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": fake.base_url}
        env["PREFECT_API_URL"] = PREFECT_API_URL.value()

        def motioncoach_dataset() -> str:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            return done.stdout + done.stderr

        first = motioncoach_dataset()
        kept = fake.requests
        assert kept >= 150 and "Waiting for labels" in first and f"{kept} images wait in Gemini batch job(s)" in first
        assert "Nothing is labeled yet, so the dataset and split are left as they were" in first
        assert not (data / "pose_dataset.jsonl").exists()
        uploaded = [f for f in fake.files.values() if not f["generated"]]
        assert sum(len(f["data"]) for f in uploaded) > 20_000_000  # the requests went as a JSONL file
        assert max(fake.batch_request_bytes) < 20_000_000 and not fake.errors  # no job too large

        second = motioncoach_dataset()
        assert fake.requests == kept and "Waiting for labels" not in second
        rows = (data / "splits" / "train.jsonl").read_text().splitlines()
        rows += (data / "splits" / "val.jsonl").read_text().splitlines()
        assert len(rows) == kept

        polls = fake.http_requests
        motioncoach_dataset()
        assert fake.http_requests == polls  # nothing left to collect or ask
    batched = sum(len(job["responses"]) for job in fake.batches.values())
    assert batched == fake.requests == kept  # no online call
    assert set(fake.requests_per_image.values()) == {1}  # no image answered twice


def test_a_paid_model_without_a_price_shows_its_cost_as_unknown(tmp_path, prefect_server, monkeypatch):
    from prefect.artifacts import Artifact

    from tests.fakes import OpenRouterFake

    with OpenRouterFake(api_key=KEY) as fake:
        monkeypatch.setenv("OPENROUTER_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
        paid = LabelConfig(labeler="openrouter", openrouter_model="openai/gpt-4o-mini")
        build_dataset(labeler="openrouter", data_dir=tmp_path / "data", labeling=paid)
        assert fake.requests == 3
    (row,) = json.loads(Artifact.get("labeling-cost").data)
    assert row["model_id"] == "openai/gpt-4o-mini" and row["requests"] == 3
    assert row["cost_usd"] == "unknown" and row["estimated_remaining_usd"] == "unknown"
    with pytest.raises(ConfigurationError, match="--price openai/gpt-4o-mini="):
        build_dataset(
            labeler="openrouter", data_dir=tmp_path / "data", labeling=paid.model_copy(update={"max_cost": 5})
        )


def test_an_unchanged_rerun_with_a_teacher_is_cached(tmp_path, task_states, monkeypatch):
    data = tmp_path / "data"
    with GeminiFake(api_key=KEY) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        build_dataset(labeler="gemini", data_dir=data)
        sent = fake.http_requests
        again = build_dataset(labeler="gemini", data_dir=data, return_state=True)
    states = task_states(again.state_details.flow_run_id)
    assert states["label-poses"] == states["write-dataset"] == states["split-dataset"] == "Cached"
    assert fake.http_requests == sent


def test_a_worker_without_the_key_in_its_environment_reads_the_secret_block(tmp_path, prefect_server, monkeypatch):
    from prefect.blocks.system import Secret

    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    Secret(value=KEY).save("gemini-api-key", overwrite=True)
    try:
        with GeminiFake(api_key=KEY) as fake:
            monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
            summary = build_dataset(labeler="gemini", data_dir=tmp_path / "data")
        assert fake.requests == 3 and summary.train.rows + summary.val.rows == 3
    finally:
        Secret.delete("gemini-api-key")
        monkeypatch.delenv("GEMINI_API_KEY", raising=False)  # the run put it in this process's environment
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes()


def test_estimate_prices_the_labeling_names_the_images_and_sends_nothing(tmp_path, prefect_server, monkeypatch):
    from prefect.artifacts import Artifact

    data = tmp_path / "data"
    with GeminiFake(api_key=KEY) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        state = build_dataset(labeler="gemini", data_dir=data, estimate=True, return_state=True)
        assert fake.http_requests == 0
    assert state.name == "Estimated" and state.is_completed(), (state.name, state.message)
    assert "gemini (gemini-3-flash-preview): 3 of 3 images to label (0 answered by the store): 3 requests" in (
        state.message
    )
    assert "Nothing was sent." in state.message and "$" in state.message
    (row,) = json.loads(Artifact.get("labeling-estimate").data)
    assert row["to_ask"] == 3 and row["cost_usd"] > 0
    images = json.loads(Artifact.get("labeling-estimate-images").data)
    assert len(images) == 3 and all(r["image"].endswith((".jpg", ".jpeg", ".png")) for r in images)
    assert not (data / "pose_dataset.jsonl").exists() and not (data / "labels.jsonl").exists()  # nothing labeled
