"""The Modal endpoint's own start, off Modal: `start_endpoint` reads /data/serving.json, starts `vllm serve`
(here tests/fakes/vllm_cli.py, a stand-in `vllm` command as strict as vLLM's about its flags), keeps its log
on the volume and serves the coach in front of it; the client waits until /health names the chosen release.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from motioncoach.errors import ConfigurationError
from tests.servers import running
from tests.test_serving_http import APP_FIELDS, PIXELS, _astronaut
from tests.videos import held

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "endpoint-token-0b9e"
RELEASE = "/data/merged/run-1"


@pytest.fixture
def volume(tmp_path, monkeypatch):
    """A stand-in volume holding a chosen release, and a `vllm` on PATH that is the stand-in."""
    from motioncoach.serving.endpoint import ServingConfig

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    vllm = bin_dir / "vllm"
    vllm.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests" / "fakes" / "vllm_cli.py"}" "$@"\n')
    vllm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "volume"
    (root / "merged" / "run-1").mkdir(parents=True)
    (root / "merged" / "run-1" / "config.json").write_text("{}")
    config = ServingConfig(model=RELEASE, max_pixels=PIXELS, pose_weights="yolo11n-pose.pt")
    (root / "serving.json").write_text(config.model_dump_json())
    return root


def test_the_endpoint_serves_the_chosen_release_through_vllm_and_the_client_waits_for_that_release(volume, tmp_path):
    from motioncoach.serving.endpoint import start_endpoint
    from motioncoach.serving.wake import wait_until_serving

    logs, cache = volume / "logs" / "vllm", tmp_path / "vllm-cache"
    endpoint = start_endpoint(volume / "serving.json", volume, log_dir=logs, cache_dir=cache, token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with running(endpoint.app) as url:
            health = httpx.get(f"{url}/health", timeout=30).json()
            assert (health["release"], health["backend"], health["model_server"]["answers"]) == (
                RELEASE,
                "vLLM 0.33.0",
                True,
            )
            assert wait_until_serving(url, RELEASE, limit_s=30) < 30
            with pytest.raises(ConfigurationError) as other:
                wait_until_serving(url, "/data/merged/run-2", limit_s=0.5, poll_s=0.1)
            assert str(other.value) == (
                f"{url}/health did not report /data/merged/run-2 within 0 s (last: HTTP 200, serving {RELEASE}): "
                "see the app's logs"
            )
            take = httpx.post(f"{url}/", files={"video_file": ("v.mp4", held(_astronaut(), 1.0))}, data=APP_FIELDS,
                              headers=auth, timeout=120)  # fmt: skip
            assert take.status_code == 200 and take.json()["status"] == "success"
            models = httpx.get(f"{url}/v1/models", headers=auth, timeout=30)
            assert models.status_code == 200 and models.json()["data"][0]["root"] == str(volume / "merged" / "run-1")
    finally:
        endpoint.stop()
    assert endpoint.server.process.poll() is not None
    (log,) = logs.glob("vllm-*.log")
    said = log.read_text()
    started = json.loads(said.splitlines()[0].split("args: ", 1)[1])
    assert started["max_model_len"] == 8192 and started["limit_mm_per_prompt"] == {"image": 1}
    assert started["mm_processor_kwargs"] == {"size": {"longest_edge": PIXELS, "shortest_edge": 4096}}
    assert f"compile cache: {cache / 'vllm'}" in said


def test_a_failed_start_says_the_end_of_its_log_which_stays_on_the_volume_per_start(volume, monkeypatch):
    from motioncoach.serving.endpoint import start_endpoint
    from motioncoach.serving.vllm import VLLMNotReady

    monkeypatch.setenv("FAKE_VLLM_CRASH", "CUDA error: out of memory")
    logs = volume / "logs" / "vllm"
    for _ in range(2):
        with pytest.raises(VLLMNotReady) as failed:
            start_endpoint(volume / "serving.json", volume, log_dir=logs)
        message = str(failed.value)
        assert message.startswith(f"vllm serve exited with code 1; the last lines of {logs}/vllm-")
        assert message.endswith("ERROR EngineCore failed to start: CUDA error: out of memory\n")
    assert len(list(logs.glob("vllm-*.log"))) == 2  # one per start, each kept
