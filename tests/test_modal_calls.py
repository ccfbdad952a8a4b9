"""Who owns the 8xH200 call, and what a paid run meets on Modal, rehearsed: the call is recorded when spawned,
re-attached by a rerun instead of paid twice, cancelled with its containers when the client is stopped,
recovered after it failed, and never given a twin by a connection blip, a failing volume read or a
preemption. Calls are counted from the rehearsal's record of the calls it ran."""

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
from modal.exception import RemoteError

from motioncoach.config import TrainConfig, local_train_config
from motioncoach.errors import TrainingError
from motioncoach.training.failures import explain_training_failure, is_out_of_memory
from remote import steps as modal_steps
from remote.client import connect
from remote.rehearsal import REHEARSAL_ENV
from remote.rehearsal.calls import RehearsalCall, calls_made
from remote.rehearsal.faults import FAULTS_ENV
from tests.release_data import build_release_data

ROOT = Path(__file__).resolve().parents[1]
TINY_ON_VOLUME = "/data/models/tiny-qwen3-vl"
TORCH_OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.32 GiB. GPU 3 has a total capacity of "
    "139.81 GiB of which 1.02 GiB is free."
)


@pytest.fixture
def rehearsal(tmp_path, monkeypatch, place_tiny_model):
    """A client data dir with a split, the same files on a rehearsal volume, and the tiny model there."""
    data = build_release_data(tmp_path / "client")
    volume = tmp_path / "volume"
    monkeypatch.setenv(REHEARSAL_ENV, str(volume))
    monkeypatch.delenv(FAULTS_ENV, raising=False)
    remote = connect(data.data_dir)
    remote.upload_dir(data.data_dir, remote.name)  # what the dataset steps leave on the volume
    place_tiny_model(volume / "models" / "tiny-qwen3-vl")
    return SimpleNamespace(data_dir=data.data_dir, splits=data.splits, volume=volume, remote=remote)


def _config(steps: int) -> TrainConfig:
    return local_train_config(TINY_ON_VOLUME).model_copy(update={"max_steps": steps, "save_steps": 2, "eval_steps": 2})


def _training_calls(volume: Path) -> list[str]:
    """Ids of the GPU training calls made: `train` (8xH200), or `train_smoke`."""
    return [call_id for function, call_id in calls_made(volume) if function in ("train", "train_smoke")]


def _record(data_dir: Path) -> dict:
    return json.loads(next(Path(data_dir).glob("runs/*/modal_call.json")).read_text())


def _swift_processes(marker: str) -> list[int]:
    """Live processes whose command line mentions marker (the run dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (proc / "stat").read_text().split(")")[-1].split()[0]
            except OSError:
                continue
            if marker in cmdline and "swift" in cmdline and state != "Z":
                found.append(int(proc.name))
    return found


def _client(rehearsal, steps: int) -> subprocess.Popen:
    """A client process training on the modal profile (rehearsed), as `motioncoach train` would."""
    env = os.environ | {REHEARSAL_ENV: str(rehearsal.volume)}
    command = [sys.executable, "-m", "tests.training_client", str(rehearsal.data_dir), str(steps)]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def _wait_for(condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _training_started(volume: Path) -> bool:
    """A step of the attempt's swift is logged (in the call's own mount: nothing is committed yet)."""
    logs = volume.glob(".rehearsal/calls/*/attempts/*/mount/data/runs/*/logging.jsonl")
    return any(p.stat().st_size > 0 for p in logs)


def _train(rehearsal, steps: int):
    return modal_steps.train(rehearsal.remote, rehearsal.splits, _config(steps), rehearsal.data_dir)


@pytest.mark.e2e
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_client_cancels_the_training_call_and_its_containers(rehearsal, stop):
    """Ctrl-C in the client, or a SIGTERM (a stopped worker, `docker stop`), stops the GPU job, swift included."""
    client = _client(rehearsal, steps=500)  # minutes of CPU: it must be stopped, not finish
    try:
        _wait_for(lambda: _training_started(rehearsal.volume))
        client.send_signal(stop)
        assert client.wait(timeout=600) != 0  # a bound for a slow machine, not a speed the test asks for
    finally:
        client.kill()
    record = _record(rehearsal.data_dir)
    assert record["state"] == "cancelled"
    call = RehearsalCall.from_id(rehearsal.volume, record["call_id"])
    assert call.cancel_request() == {"terminate_containers": True}  # containers go too, not kept warm
    _wait_for(lambda: not call._alive(), timeout=60)
    with pytest.raises(RemoteError, match="cancelled"):
        call.get(timeout=0)
    assert _swift_processes(str(rehearsal.volume)) == []  # the trainer inside the call stopped with it


@pytest.mark.e2e
def test_a_rerun_reattaches_to_the_running_call_instead_of_paying_twice(rehearsal):
    """A client killed with -9 (a crashed worker) leaves the call running; the rerun waits on that call."""
    client = _client(rehearsal, steps=6)
    try:
        _wait_for(lambda: _training_started(rehearsal.volume))
    finally:
        client.kill()
        client.wait()
    first = _record(rehearsal.data_dir)["call_id"]
    trained = _train(rehearsal, 6)
    assert _training_calls(rehearsal.volume) == [first]  # one GPU job paid for
    assert _record(rehearsal.data_dir)["call_id"] == first and _record(rehearsal.data_dir)["state"] == "finished"
    assert trained.checkpoint.name.startswith("checkpoint-")
    assert (rehearsal.volume / trained.checkpoint.relative_to("/data") / "adapter_model.safetensors").is_file()
    # And once finished, a rerun of the same run takes the recorded call's result: still one call.
    again = _train(rehearsal, 6)
    assert again.checkpoint == trained.checkpoint and _training_calls(rehearsal.volume) == [first]


@pytest.mark.e2e
def test_a_failing_swift_run_is_returned_not_retried(rehearsal):
    """swift's own failure completes the call with an error result, so Modal has nothing to retry; the call
    is recorded as failed, here and on the volume, so that a rerun does not take its error again."""
    broken = _config(2).model_copy(update={"target_modules": "no_such_module"})
    with pytest.raises(TrainingError, match="it was not retried"):
        modal_steps.train(rehearsal.remote, rehearsal.splits, broken, rehearsal.data_dir)
    record = _record(rehearsal.data_dir)
    result = RehearsalCall.from_id(rehearsal.volume, record["call_id"]).get(timeout=0)  # a success to Modal
    assert "error" in result and "swift sft exited with code" in result["error"]
    assert record["state"] == "failed"
    on_volume = json.loads(next(rehearsal.volume.glob("data/runs/*/modal_call.json")).read_text())
    assert on_volume["state"] == "failed" and on_volume["call_id"] == record["call_id"]
    attempts = rehearsal.volume / ".rehearsal" / "calls" / record["call_id"] / "attempts"
    assert len(list(attempts.iterdir())) == 1  # one attempt: no retry


def test_out_of_memory_says_what_to_change():
    message = explain_training_failure(TORCH_OOM, TrainConfig())
    assert is_out_of_memory(TORCH_OOM) and not is_out_of_memory("ValueError: Target modules not found")
    assert message.startswith("Training ran out of GPU memory. It was not retried")
    for setting in ("per_device_train_batch_size (2;", "max_length (4096)", "max_pixels (1003520)", "'zero2'"):
        assert setting in message


# ---- Faults a paid run meets, rehearsed (MOTIONCOACH_REHEARSAL_FAULTS) ----


@pytest.mark.e2e
def test_connection_errors_while_waiting_never_spawn_a_second_call(rehearsal, monkeypatch):
    monkeypatch.setenv(FAULTS_ENV, "connection@get:3")
    from motioncoach.config import ModalConfig

    remote = connect(rehearsal.data_dir, ModalConfig(outage_wait_seconds=0.2))  # short waits between tries
    trained = modal_steps.train(remote, rehearsal.splits, _config(4), rehearsal.data_dir)
    assert len(_training_calls(rehearsal.volume)) == 1 and _record(rehearsal.data_dir)["state"] == "finished"
    assert trained.checkpoint.name.startswith("checkpoint-")
    faults = json.loads((rehearsal.volume / ".rehearsal" / "faults.json").read_text())
    assert faults["armed"]["connection@get:3"]["left"] == 0  # all three fired


@pytest.mark.e2e
def test_failing_volume_reads_during_training_do_not_cancel_the_call(rehearsal, monkeypatch):
    from motioncoach.config import ModalConfig

    monkeypatch.setenv(FAULTS_ENV, "error@volume-read:2")
    remote = connect(rehearsal.data_dir, ModalConfig(outage_wait_seconds=0.2, poll_seconds=1))
    steps = []
    trained = modal_steps.train(remote, rehearsal.splits, _config(4), rehearsal.data_dir, on_log=steps.append)
    (call_id,) = _training_calls(rehearsal.volume)
    assert RehearsalCall.from_id(rehearsal.volume, call_id).cancel_request() is None  # never cancelled
    assert _record(rehearsal.data_dir)["state"] == "finished" and trained.checkpoint.name.startswith("checkpoint-")
    faults = json.loads((rehearsal.volume / ".rehearsal" / "faults.json").read_text())
    assert faults["armed"]["error@volume-read:2"]["left"] == 0


@pytest.mark.e2e
def test_a_preempted_call_is_restarted_and_resumes_from_its_committed_checkpoint(rehearsal, monkeypatch):
    monkeypatch.setenv(FAULTS_ENV, "preempt@train:2")
    remote = connect(rehearsal.data_dir)
    trained = modal_steps.train(remote, rehearsal.splits, _config(6), rehearsal.data_dir)
    (call_id,) = _training_calls(rehearsal.volume)  # Modal restarts the input: still one call
    attempts = sorted((rehearsal.volume / ".rehearsal" / "calls" / call_id / "attempts").iterdir())
    assert len(attempts) == 2 and (attempts[0] / "preempted").exists()
    run = rehearsal.volume / trained.run_dir.relative_to("/data")
    records = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]
    logged = [int(r["global_step/max_steps"].split("/")[0]) for r in records if "loss" in r]
    # Steps up to the committed checkpoint were logged by the first attempt and never again: the second
    # attempt resumed from checkpoint 2 (or a later one the first attempt committed) and went on to 6.
    assert logged and max(logged) == 6 and logged.count(1) == 1 and logged.count(2) <= 2
    resumed = json.loads((run / "args.json").read_text())["resume_from_checkpoint"]  # the restarted attempt's
    assert resumed and int(resumed.rsplit("checkpoint-", 1)[1]) >= 2
    assert _record(rehearsal.data_dir)["state"] == "finished"


def test_a_stale_deployment_stops_the_run_before_any_work(tmp_path, monkeypatch):
    from motioncoach.errors import ConfigurationError
    from remote.client import check_modal_ready

    volume = tmp_path / "volume"
    monkeypatch.setenv(REHEARSAL_ENV, str(volume))
    monkeypatch.setenv(FAULTS_ENV, "stale@deploy")
    with pytest.raises(ConfigurationError) as stale:
        check_modal_ready(tmp_path / "data")
    assert "runs other code (version 0000000000000000) than this checkout" in str(stale.value)
    assert "`modal deploy -m remote.app`" in str(stale.value) and "Nothing was run" in str(stale.value)
    assert [function for function, _ in calls_made(volume)] == ["app_version"]  # the only call made
    check_modal_ready(tmp_path / "data")  # deployed again (the fault fired once): ready


class _WorkerLost(BaseException):
    """What a flow run meets when its process is torn away (not an error of the flow's own code)."""


@pytest.mark.e2e
def test_a_crashed_flow_run_cancels_the_training_call_it_left_running_and_no_other_runs(rehearsal, prefect_server):
    """A real flow run, on the test Prefect server, that spawned a training call and then crashed: its
    on_crashed hook (tasks.locks.cancel_paid_calls) cancels the call with its containers, and leaves the
    calls another run recorded in the same data dir alone."""
    from prefect import flow

    from remote.calls import CallRecord, TrainingCalls
    from remote.contract import CALL_RECORD
    from tasks.locks import cancel_paid_calls, run_owner_set

    run_dir = f"{rehearsal.remote.name}/runs/crashed"
    expected = {"train": rehearsal.splits.train.sha256, "val": rehearsal.splits.val.sha256}
    others = Path(rehearsal.data_dir) / "runs" / "another-run" / CALL_RECORD
    others.parent.mkdir(parents=True)
    others.write_text(CallRecord(call_id="fc-of-another-run", state="running", at=time.time(),
                                 owner="flow run 0000").model_dump_json())  # fmt: skip

    @flow(name="crashing-trainer", on_crashed=[cancel_paid_calls])
    def crashing(profile: str, data_dir: str) -> None:
        with run_owner_set():
            remote = connect(Path(data_dir))
            calls = TrainingCalls(remote, run_dir, Path(data_dir) / "runs" / "crashed" / CALL_RECORD)
            calls.spawn(remote.function("train"), _config(500).model_dump(mode="json"), remote.name, expected,
                        run_dir)  # fmt: skip
            raise _WorkerLost("the worker's process went away")

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with pytest.raises(_WorkerLost):  # Prefect records the crash, runs the hooks, and lets it through
        crashing(profile="modal", data_dir=str(rehearsal.data_dir))
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["crashing-trainer"])))
    assert run.state.is_crashed(), run.state
    record = json.loads((Path(rehearsal.data_dir) / "runs" / "crashed" / CALL_RECORD).read_text())
    assert record["state"] == "cancelled" and record["owner"] == f"flow run {run.id}"
    call = RehearsalCall.from_id(rehearsal.volume, record["call_id"])
    assert call.cancel_request() == {"terminate_containers": True}
    _wait_for(lambda: not call._alive(), timeout=60)
    assert _training_calls(rehearsal.volume) == [record["call_id"]]
    assert json.loads(others.read_text())["state"] == "running"  # another run's call: not this hook's to stop
