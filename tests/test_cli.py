"""The CLI's promises that stop or wait before any work: a train without a dataset, a busy data dir."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

HOLD = """
import sys
from motioncoach.lock import data_dir_lock
with data_dir_lock(sys.argv[1], "build-dataset run 'brave-fox'"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_train_without_a_dataset_fails_at_once_naming_the_command_that_makes_one(tmp_path, prefect_server):
    from prefect.client.orchestration import get_client

    data = tmp_path / "empty"
    data.mkdir()
    with get_client(sync_client=True) as client:
        before = len(client.read_flow_runs())
    result = CliRunner().invoke(app, ["train", "--data-dir", str(data), "--adapter-dir", str(tmp_path / "adapter")])
    assert result.exit_code == 1
    assert f"No dataset in {data}: {data}/splits/train.jsonl is missing." in result.output
    assert f"Run `motioncoach dataset --data-dir {data}` first" in result.output
    with get_client(sync_client=True) as client:
        assert len(client.read_flow_runs()) == before  # stopped before any flow run started
    assert list(data.iterdir()) == [] and not (tmp_path / "adapter").exists()


@pytest.mark.e2e
def test_a_cli_run_on_a_busy_data_dir_waits_with_wait_for_lock_and_runs_once_it_is_free(
    tmp_path, prefect_server, monkeypatch
):
    from motioncoach.lock import WAIT_VARIABLE

    monkeypatch.setenv(WAIT_VARIABLE, "0")  # restored after the test: --wait-for-lock sets it for the process
    data = tmp_path / "data"
    data.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = CliRunner().invoke(app, ["dataset", "--data-dir", str(data)])
        assert refused.exit_code == 1 and "is in use by build-dataset run 'brave-fox'" in refused.output
        assert not (data / "pose_dataset.jsonl").exists()

        outcome = {}
        waiting = threading.Thread(
            target=lambda: outcome.update(result=CliRunner().invoke(app, ["dataset", "--data-dir", str(data),
                                                                          "--wait-for-lock", "600"]))
        )  # fmt: skip
        waiting.start()
        waiting.join(timeout=5)
        assert waiting.is_alive() and not (data / "pose_dataset.jsonl").exists()  # queued, nothing written
        holder.stdin.write("done\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
        waiting.join(timeout=300)
        assert not waiting.is_alive()
    finally:
        holder.kill()
        holder.wait()
    result = outcome["result"]
    assert result.exit_code == 0, result.output
    assert (data / "pose_dataset.jsonl").is_file() and (data / "splits" / "val.jsonl").is_file()


def test_rehearse_volume_needs_the_modal_profile(tmp_path):
    result = CliRunner().invoke(app, ["dataset", "--rehearse-volume", str(tmp_path), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "--rehearse-volume rehearses the modal profile: add --profile modal." in result.output
    assert not Path(tmp_path / "pose_dataset.jsonl").exists()
