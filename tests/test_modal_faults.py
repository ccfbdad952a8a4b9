"""What Modal does to a paid run, rehearsed through the CLI as a user runs it: `motioncoach train --profile modal
--rehearse-volume` with no HF_TOKEN and no Hub repo, each fault fired once (MOTIONCOACH_REHEARSAL_FAULTS), the
calls counted from the rehearsal's record of the calls it ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from remote.rehearsal import REHEARSAL_ENV, TRAIN_STEPS_ENV
from remote.rehearsal.calls import RehearsalCall, calls_made, pid_alive
from remote.rehearsal.faults import FAULTS_ENV
from tests.release_data import build_release_data

ROOT = Path(__file__).resolve().parents[1]
HUB_VARIABLES = ("HF_TOKEN", "HF_ADAPTER_REPO_ID", "HF_DATASET_REPO_ID", "HF_MERGED_REPO_ID", "HUGGING_FACE_HUB_TOKEN")

pytestmark = pytest.mark.e2e


@pytest.fixture
def prepared(tmp_path, prefect_api_url, place_tiny_model):
    """A client data dir with a split, the same files on a rehearsal volume, and the tiny base model there."""
    from remote.client import connect

    data = build_release_data(tmp_path / "client").data_dir
    volume = tmp_path / "volume"
    os.environ[REHEARSAL_ENV] = str(volume)
    try:
        remote = connect(data)
        remote.upload_dir(data, remote.name)  # what the dataset steps leave on the volume
    finally:
        del os.environ[REHEARSAL_ENV]
    place_tiny_model(volume / "models" / "tiny-qwen3-vl")
    env = {k: v for k, v in os.environ.items() if k not in HUB_VARIABLES} | {
        "PREFECT_API_URL": prefect_api_url,
        TRAIN_STEPS_ENV: "4",
    }
    return SimpleNamespace(data_dir=data, volume=volume, adapter_dir=tmp_path / "lora-adapter", env=env)


def motioncoach_train(prepared, faults: str = "", timeout: float = 900) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "cli.main", "train", "--profile", "modal", "--rehearse-volume", str(prepared.volume),
        "--data-dir", str(prepared.data_dir), "--adapter-dir", str(prepared.adapter_dir), "--no-gate",
    ]  # fmt: skip
    env = prepared.env | ({FAULTS_ENV: faults} if faults else {})
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def training_calls(volume: Path) -> list[str]:
    return [call_id for function, call_id in calls_made(volume) if function in ("train", "train_smoke")]


def trained_in(volume: Path, call_id: str) -> bool:
    """Whether the call trained (its result names a checkpoint) rather than found the run dir claimed."""
    result = volume / ".rehearsal" / "calls" / call_id / "result.json"
    return result.is_file() and "checkpoint" in json.loads(result.read_text())


def _output(done: subprocess.CompletedProcess) -> str:
    return done.stdout[-6000:] + done.stderr[-6000:]


def test_internal_failure_then_out_of_memory_then_a_lost_spawn_and_a_failed_commit_and_the_run_finishes(prepared):
    """One data dir through four runs of `motioncoach train --profile modal`, each meeting what a paid run may.

    1. internal@get: Modal ends the training call in an internal failure; the run ends at once, naming it.
    2. oom@train: swift runs out of memory; the run fails saying what to change, and is not retried.
    3. The rerun, with lost-spawn@train, warm@train and commit-fail@train:1: the new call starts at once and
       the answer to its spawn is lost, then its first commit fails. It spawns one new call, which alone
       trains; the checkpoints after the failed commit reach the volume; the run finishes, merged release
       included, with an adapter small enough to download.
    """
    failed = motioncoach_train(prepared, "internal@get", timeout=300)
    assert failed.returncode != 0
    assert "Modal reported an internal failure of the training call" in failed.stderr, _output(failed)
    assert "rerun, and a new call resumes from the latest one" in failed.stderr
    (internal,) = training_calls(prepared.volume)
    call = RehearsalCall.from_id(prepared.volume, internal)
    deadline = time.monotonic() + 60
    while call._alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not call._alive()  # Modal ended the call: nothing is left running

    oom = motioncoach_train(prepared, "oom@train")
    assert oom.returncode != 0 and "Training ran out of GPU memory. It was not retried" in oom.stderr, _output(oom)
    assert "per_device_train_batch_size" in oom.stderr and "rehearsed fault oom@train" in oom.stderr
    out_of_memory = training_calls(prepared.volume)[-1]
    attempts = prepared.volume / ".rehearsal" / "calls" / out_of_memory / "attempts"
    assert len(list(attempts.iterdir())) == 1  # returned, not retried

    done = motioncoach_train(prepared, "lost-spawn@train,warm@train,commit-fail@train:1")
    assert done.returncode == 0, _output(done)
    assert "the answer to the training spawn was lost" in done.stderr
    calls = training_calls(prepared.volume)
    assert calls[:2] == [internal, out_of_memory] and len(calls) == 3  # one new call: no twin
    assert [c for c in calls if trained_in(prepared.volume, c)] == [calls[2]]  # swift trained in it alone
    claims = json.loads((prepared.volume / ".rehearsal" / "dicts" / "motioncoach-claims.json").read_text())
    (run_claim,) = [value for key, value in claims.items() if key.startswith("run:")]
    assert run_claim["call_id"] == calls[2]

    faults = json.loads((prepared.volume / ".rehearsal" / "faults.json").read_text())
    assert faults["armed"]["commit-fail@train:1"]["left"] == 0  # the commit did fail
    log = (prepared.volume / ".rehearsal" / "calls" / calls[2] / "output.log").read_text()
    assert "rehearsed fault commit-fail@train" in log  # logged, and the container went on
    (run,) = (prepared.volume / "data" / "runs").iterdir()
    checkpoints = sorted(int(p.parent.name.split("-")[1]) for p in run.glob("checkpoint-*/trainer_state.json"))
    assert checkpoints and max(checkpoints) == 4  # the last checkpoint, written after the failed commit
    assert (run / "swift.log").read_text().strip()  # the trainer's log, copied from local disk at each commit

    adapter = prepared.adapter_dir
    assert (adapter / "adapter_model.safetensors").is_file()  # small enough: downloaded
    record = json.loads((adapter / "modal-adapter.json").read_text())
    assert record["downloaded"] is True and record["merged"]["path"].startswith("data/merged/")
    assert (prepared.volume / record["merged"]["path"] / "config.json").is_file()
    assert [f for f, _ in calls_made(prepared.volume)].count("merge_adapter") == 1


def test_ctrl_c_during_a_labeling_fan_out_leaves_no_label_shard_running(tmp_path, prefect_api_url):
    """`motioncoach dataset --profile modal` labeling with a slow teacher, interrupted while its label shards run:
    every shard is cancelled with its containers before the client exits."""
    from motioncoach.sources.samples import assemble_samples
    from tests.fakes import GeminiFake

    photos = assemble_samples(tmp_path / "photos")
    volume = tmp_path / "volume"
    command = [
        sys.executable, "-m", "cli.main", "dataset", "--profile", "modal", "--source", str(photos),
        "--labeler", "gemini", "--rehearse-volume", str(volume), "--data-dir", str(tmp_path / "data"),
        "--audit", "0", "--concurrency", "1",
    ]  # fmt: skip
    with GeminiFake(api_key="rehearsal-key", latency=30) as gemini:  # each answer takes half a minute
        env = os.environ | {
            "GEMINI_API_KEY": "rehearsal-key", "GOOGLE_GEMINI_BASE_URL": gemini.base_url,
            "PREFECT_API_URL": prefect_api_url, "MOTIONCOACH_POSE_SHARDS": "1",
        }  # fmt: skip
        client = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 600
            while gemini.requests == 0:  # a shard is asking the teacher
                assert time.monotonic() < deadline and client.poll() is None, client.stdout.read()[-4000:]
                time.sleep(0.2)
            client.send_signal(signal.SIGINT)
            client.wait(timeout=120)
        finally:
            client.kill()
    shards = [call_id for function, call_id in calls_made(volume) if function == "label_shard"]
    assert shards
    for call_id in shards:
        call = RehearsalCall.from_id(volume, call_id)
        assert call.cancel_request() == {"terminate_containers": True}
        deadline = time.monotonic() + 60
        while call._alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not call._alive(), call_id
    pids = [int(p.read_text()) for p in (volume / ".rehearsal" / "calls").glob("*/pid")]
    assert not [pid for pid in pids if pid_alive(pid)]  # no call of the run left running
    book = json.loads((tmp_path / "data" / "modal_calls.json").read_text())
    assert {book[call_id]["state"] for call_id in shards} == {"cancelled"}
