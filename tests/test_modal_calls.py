"""Who owns the 8xH200 call: recorded when spawned, re-attached by a rerun instead of paid twice,
cancelled with the client or its flow run, and swift's own failures returned rather than retried.
Everything runs through the rehearsal: each Modal call is a local process, the volume a directory."""

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
from remote.rehearsal.calls import RehearsalCall
from tasks.training import cancel_training_on_modal
from tests.rehearsal import rehearsal_calls
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
    remote = connect(data.data_dir)
    remote.upload_dir(data.data_dir, remote.name)  # what the dataset steps leave on the volume
    place_tiny_model(volume / "models" / "tiny-qwen3-vl")
    return SimpleNamespace(data_dir=data.data_dir, splits=data.splits, volume=volume, remote=remote)


def _config(steps: int) -> TrainConfig:
    return local_train_config(TINY_ON_VOLUME).model_copy(update={"max_steps": steps, "save_steps": 2, "eval_steps": 2})


def _training_calls(volume: Path) -> int:
    """GPU training calls made: `train` (8xH200) or `train_single_gpu` (the one-process recipes here)."""
    return sum(name in ("train", "train_single_gpu") for name in rehearsal_calls(volume))


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
    return any(p.stat().st_size > 0 for p in volume.glob("data/runs/*/logging.jsonl"))


@pytest.mark.e2e
def test_an_interrupted_client_cancels_the_training_call(rehearsal):
    """Ctrl-C in the client (or the SIGTERM a Prefect cancel sends its worker) stops the GPU job, swift included."""
    client = _client(rehearsal, steps=500)  # minutes of CPU: it must be stopped, not finish
    try:
        _wait_for(lambda: _training_started(rehearsal.volume))
        client.send_signal(signal.SIGINT)
        assert client.wait(timeout=120) != 0
    finally:
        client.kill()
    record = _record(rehearsal.data_dir)
    assert record["state"] == "cancelled"
    with pytest.raises(RemoteError, match="cancelled"):
        RehearsalCall.from_id(rehearsal.volume, record["call_id"]).get(timeout=0)
    run_dir = next(rehearsal.volume.glob("data/runs/*"))
    assert _swift_processes(str(run_dir)) == []  # the trainer inside the call stopped with it
    steps = len((run_dir / "logging.jsonl").read_text().splitlines())
    time.sleep(3)
    assert len((run_dir / "logging.jsonl").read_text().splitlines()) == steps


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
    trained = modal_steps.train(rehearsal.remote, rehearsal.splits, _config(6), rehearsal.data_dir)
    assert _training_calls(rehearsal.volume) == 1  # one GPU job paid for
    assert _record(rehearsal.data_dir) | {"at": 0} == {"call_id": first, "state": "finished", "at": 0}
    assert trained.checkpoint.name == "checkpoint-6"
    assert (rehearsal.volume / trained.checkpoint.relative_to("/data") / "adapter_model.safetensors").is_file()
    # And once finished, a rerun of the same run takes the recorded call's result: still one call.
    again = modal_steps.train(rehearsal.remote, rehearsal.splits, _config(6), rehearsal.data_dir)
    assert again.checkpoint == trained.checkpoint and _training_calls(rehearsal.volume) == 1


@pytest.mark.e2e
def test_a_failing_swift_run_is_returned_not_retried(rehearsal):
    """swift's own failure completes the call with an error result, so Modal has nothing to retry."""
    broken = _config(2).model_copy(update={"target_modules": "no_such_module"})
    with pytest.raises(TrainingError, match="it was not retried"):
        modal_steps.train(rehearsal.remote, rehearsal.splits, broken, rehearsal.data_dir)
    call = RehearsalCall.from_id(rehearsal.volume, _record(rehearsal.data_dir)["call_id"])
    result = call.get(timeout=0)  # the call succeeded as far as Modal knows
    assert "error" in result and "swift sft exited with code" in result["error"]


def test_out_of_memory_says_what_to_change():
    message = explain_training_failure(TORCH_OOM, TrainConfig())
    assert is_out_of_memory(TORCH_OOM) and not is_out_of_memory("ValueError: Target modules not found")
    assert message.startswith("Training ran out of GPU memory. It was not retried")
    for setting in ("per_device_train_batch_size (2;", "max_length (4096)", "max_pixels (1003520)", "'zero2'"):
        assert setting in message


@pytest.mark.e2e
def test_cancelling_or_crashing_the_flow_run_cancels_the_call(rehearsal):
    """The flows' on_cancellation and on_crashed hook stops what the run's state says is running."""
    call = rehearsal.remote.function("train").spawn(
        _config(500).model_dump(mode="json"),
        rehearsal.remote.name,
        {"train": rehearsal.splits.train.sha256, "val": rehearsal.splits.val.sha256},
    )
    run_dir = "data/runs/hook"
    modal_steps.record_call(rehearsal.remote, call, run_dir, rehearsal.data_dir / "runs" / "hook" / "modal_call.json")
    _wait_for(lambda: _training_started(rehearsal.volume))
    flow_run = SimpleNamespace(parameters={"profile": "modal", "data_dir": str(rehearsal.data_dir)})
    cancel_training_on_modal(None, flow_run, SimpleNamespace(name="Cancelling"))
    with pytest.raises(RemoteError, match="cancelled"):
        call.get(timeout=0)
    assert _record(rehearsal.data_dir)["state"] == "cancelled"
    assert _swift_processes(str(rehearsal.volume / "data" / "runs")) == []
