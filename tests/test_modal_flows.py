"""The flows with profile=modal: every Modal function run locally (`.local()`) on a directory volume."""

from __future__ import annotations

from pathlib import Path

import pytest

from motioncoach.config import ModalConfig, PoseFilterConfig, local_train_config
from tasks import modal_client
from tests.test_modal import DirVolume, LocalApp

pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally:UserWarning")


@pytest.mark.slow
def test_pipeline_on_modal_then_a_rerun(prefect_server, tmp_path, monkeypatch):
    import flows.dataset
    import tasks.training
    from flows.pipeline import pipeline
    from motioncoach.training.tiny_model import build_tiny_qwen3_vl

    volume = tmp_path / "volume"
    volume.mkdir()
    monkeypatch.setenv("MOTIONCOACH_VOLUME_ROOT", str(volume))
    app = LocalApp()
    monkeypatch.setattr(
        modal_client,
        "connect",
        lambda data_dir, settings=None: modal_client.Remote(
            app, DirVolume(volume), Path(data_dir).name, ModalConfig(pose_shards=2)
        ),
    )
    monkeypatch.setattr(modal_client, "check_modal_ready", lambda settings=None: None)
    # Offline stand-ins for yolo26x-pose and the 32B model: the shipped yolo11n, the tiny Qwen3-VL.
    monkeypatch.setattr(flows.dataset, "pose_filter_config", lambda profile: PoseFilterConfig(batch_size=4))
    tiny = build_tiny_qwen3_vl(volume / "models" / "tiny")
    recipe = local_train_config(tiny).model_copy(update={"max_steps": 2, "save_steps": 1, "eval_steps": 1})
    monkeypatch.setattr(tasks.training, "TrainConfig", lambda: recipe)

    data, adapter = tmp_path / "data", tmp_path / "lora-adapter"
    assert pipeline(source="samples", labeler="rules", data_dir=data, adapter_dir=adapter, profile="modal") == adapter
    assert app.calls == [
        "download_images",
        "filter_pose_shard",
        "filter_pose_shard",
        "merge_pose_shards",
        "label_poses",
        "write_dataset",
        "download_base_model",
        "train",
        "package_adapter",
        "evaluate_adapter",
    ]
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (data / "pose_dataset.jsonl").read_bytes() == (volume / "data" / "pose_dataset.jsonl").read_bytes()

    app.calls.clear()
    pipeline(source="samples", labeler="rules", data_dir=data, adapter_dir=adapter, profile="modal")
    # Pose filter, dataset and training come back Cached; the store on the volume answers the labels.
    assert app.calls == ["download_images", "label_poses", "package_adapter"]


def test_cli_modal_profile_without_credentials_fails_fast(tmp_path):
    import os
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")} | {"HOME": str(tmp_path)}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--profile", "modal", "--data-dir", str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Modal credentials are missing: run `modal token new`, or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET." in (
        result.stderr
    )
    assert time.monotonic() - started < 20 and not (tmp_path / "data").exists()
