"""The flows on a real Prefect server: outputs on disk, and reruns served from the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flows.dataset import build_dataset
from flows.pipeline import pipeline
from motioncoach.dataset import read_jsonl
from motioncoach.hashing import file_sha256
from tests.artifacts import local_references, run_artifacts

DATASET_TASKS = ("filter-poses", "label-poses", "write-dataset", "split-dataset")


def _dataset_images(data_dir) -> set[str]:
    return {row["images"][0] for row in read_jsonl(data_dir / "pose_dataset.jsonl")}


def _samples(data_dir, *names):
    folder = data_dir / "raw" / "samples"
    return {f"images/{file_sha256(p)}{p.suffix}" for p in folder.rglob("*") if p.stem in names}


def test_dataset_flow_keeps_single_person_photos_and_reruns_from_cache(tmp_path, task_states):
    """`motioncoach run --skip-train`: the dataset and split, no training; a rerun is served from the cache."""
    data, adapter = tmp_path / "data", tmp_path / "adapter"
    state = pipeline(data_dir=data, adapter_dir=adapter, skip_train=True, return_state=True)
    assert state.is_completed()
    assert not (data / "runs").exists() and not adapter.exists()  # --skip-train: nothing trained or placed
    # grace_hopper's portrait shows too little body for the rules to coach: its row is an abstention.
    assert _dataset_images(data) == _samples(data, "astronaut", "cameraman", "grace_hopper")
    assert not _dataset_images(data) & _samples(data, "bus", "zidane", "coffee", "chelsea")
    cache = json.loads((data / "yolo_cache.json").read_text())["entries"]
    assert len(cache) == 7
    first = task_states(state.state_details.flow_run_id)
    assert all(first[name] == "Completed" for name in DATASET_TASKS) and "train-adapter" not in first
    # Artifacts a browser on another machine can open: tables and text, no local paths or file:// links.
    from prefect.artifacts import Artifact

    yolo = json.loads(Artifact.get("yolo-cache").data)
    assert {"activity": "football", "outcome": "rejected", "reason": "several people (2)", "images": 1} in yolo
    assert sum(row["images"] for row in yolo) == 7
    assert json.loads(Artifact.get("label-failures").data) == [{"result": "none"}]  # written every run
    assert json.loads(Artifact.get("labeling-cost").data) == [{"result": "none"}]  # the rules cost nothing
    by_activity = {row["activity"]: row for row in json.loads(Artifact.get("split-by-activity").data)}
    assert by_activity["all"]["train"] + by_activity["all"]["val"] == 3 and by_activity["seated"]["abstain_rate"] == 1
    artifacts = run_artifacts([state.state_details.flow_run_id])
    assert {"yolo-cache", "label-failures", "labeling-cost", "split-by-activity"} <= {a["key"] for a in artifacts}
    assert local_references(artifacts, tmp_path, Path.home()) == []

    again = build_dataset(data_dir=data, return_state=True)
    assert {name: task_states(again.state_details.flow_run_id)[name] for name in DATASET_TASKS} == {
        name: "Cached" for name in DATASET_TASKS
    }


def test_artifacts_naming_a_local_path_are_caught():
    """The check above can fail: an artifact that names a local folder or a file:// link is reported."""
    leaking = [
        {"key": "card", "type": "markdown", "description": "", "data": '"see /tmp/run/data/card.md"'},
        {"key": "gallery", "type": "markdown", "description": "file:///tmp/x.png", "data": '""'},
        {"key": "fine", "type": "table", "description": "rows", "data": '"<data-dir>/runs/k"'},
    ]
    assert local_references(leaking, Path("/tmp/run")) == ["card: /tmp/run", "gallery: file://"]


def test_a_new_image_is_the_only_one_run_through_yolo(tmp_path, prefect_server):
    data = tmp_path / "data"
    folder = tmp_path / "photos"
    shutil.copytree(_assembled(tmp_path), folder)
    first = build_dataset(source=str(folder), data_dir=data)
    assert first.train.rows + first.val.rows == 3
    extra = folder / "standing" / "astronaut_mirrored.png"
    from PIL import Image, ImageOps

    ImageOps.mirror(Image.open(folder / "standing" / "astronaut.png")).save(extra)
    before = json.loads((data / "yolo_cache.json").read_text())["entries"]
    second = build_dataset(source=str(folder), data_dir=data)
    after = json.loads((data / "yolo_cache.json").read_text())["entries"]
    assert set(after) - set(before) == {k for k in after if k.startswith(file_sha256(extra))}
    assert {k: after[k] for k in before} == before
    assert second.train.rows + second.val.rows == 4


def _assembled(tmp_path):
    from motioncoach.sources.samples import assemble_samples

    return assemble_samples(tmp_path / "assembled")


def test_broken_files_are_recorded_and_never_stop_the_run(tmp_path, prefect_server):
    folder = tmp_path / "photos"
    shutil.copytree(_assembled(tmp_path), folder)
    broken = folder / "broken"
    broken.mkdir()
    (broken / "empty.jpg").write_bytes(b"")
    (broken / "truncated.jpg").write_bytes((folder / "seated" / "grace_hopper.jpg").read_bytes()[:2000])
    (broken / "notes.jpg").write_text("squat notes, not a photo")
    (broken / "page.png").write_text("<html><body>404</body></html>")
    (broken / "noise.jpg").write_bytes(bytes(range(256)) * 40)
    (broken / "bomb.png").write_bytes(_png_claiming(60000, 60000))
    data = tmp_path / "data"
    summary = build_dataset(source=str(folder), data_dir=data)
    assert summary.train.rows + summary.val.rows == 3  # astronaut, cameraman and grace_hopper
    reasons = {
        Path(e["source_path"]).name: e["reason"]
        for e in json.loads((data / "yolo_cache.json").read_text())["entries"].values()
        if Path(e["source_path"]).parent.name == "broken"
    }
    assert reasons == {
        "empty.jpg": "empty file",
        "truncated.jpg": "truncated image",
        "notes.jpg": "not an image",
        "page.png": "not an image",
        "noise.jpg": "not an image",
        "bomb.png": "decompression bomb: 60000x60000 pixels exceeds max_pixels=50000000",
    }


def _png_claiming(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_the_yolo_cache_artifact_summarizes_a_cache_of_any_size(tmp_path):
    from tasks.pose import yolo_cache_summary

    entries = {
        f"{i:064x}:fp": {"activity": ("squat", "yoga")[i % 2], "outcome": "kept" if i % 3 else "rejected",
                         "reason": None if i % 3 else "no person"}
        for i in range(5000)
    }  # fmt: skip
    (tmp_path / "yolo_cache.json").write_text(json.dumps({"entries": entries}))
    summary = yolo_cache_summary(tmp_path / "yolo_cache.json")
    assert len(summary) == 4 and sum(row["images"] for row in summary) == 5000
    assert {"activity": "squat", "outcome": "rejected", "reason": "no person", "images": 834} in summary


def test_cache_keys_follow_the_domain_code_not_the_task_body(tmp_path):
    """A step's key is its inputs and the code of the modules it runs: a task function (its log lines,
    its retries) is not part of it, and a change to those modules is."""
    from tasks.code_versions import STEP_CODE, code_version
    from tasks.storage import keyed

    inputs = {"splits": "sha-of-the-split", "profile": "local", "data_dir": "/data", "smoke": False}
    policy = keyed("training")
    assert policy.compute_key(None, inputs, None) == policy.compute_key(None, dict(inputs), None)
    assert not any(part.startswith("tasks") for parts in STEP_CODE.values() for part in parts)
    on_modal = policy.compute_key(None, {**inputs, "profile": "modal"}, None)
    assert on_modal != policy.compute_key(None, inputs, None)  # the Modal app's version joins the key there
    package = tmp_path / "motioncoach" / "training"
    package.mkdir(parents=True)
    (package / "sft.py").write_text("EPOCHS = 10\n")
    before = code_version(("motioncoach/training",), tmp_path)
    (package / "sft.py").write_text("EPOCHS = 11\n")
    code_version.cache_clear()
    assert code_version(("motioncoach/training",), tmp_path) != before


def test_a_cached_split_whose_files_are_gone_is_written_again(tmp_path, task_states):
    data = tmp_path / "data"
    build_dataset(data_dir=data)
    shutil.rmtree(data / "splits")
    again = build_dataset(data_dir=data, return_state=True)
    states = task_states(again.state_details.flow_run_id)
    assert states["split-dataset"] == "Completed" and states["write-dataset"] == "Cached"
    assert (data / "splits" / "train.jsonl").is_file() and (data / "splits" / "val.jsonl").is_file()


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_a_pipeline_failing_after_training_is_retried_on_a_clean_prefect_home_then_reruns_cached(
    tmp_path, task_states, prefect_api_url, place_tiny_model, monkeypatch
):
    """The local pipeline trains once: its upload fails (the Hub answers 503), the failed run is retried in
    a process whose Prefect home is empty (a new container, a cleaned worker), which reads the finished
    sub-flow and tasks from the data dir and uploads; then an unchanged rerun is Cached throughout."""
    import os
    import subprocess
    import sys

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    from motioncoach.publish import HubConfig, ReleaseSettings
    from tests.fakes.hub import FakeHub

    data, adapter = tmp_path / "data", tmp_path / "adapter"
    place_tiny_model(data / "models" / "tiny-qwen3-vl")  # built once per test run
    release = ReleaseSettings(hub=HubConfig(retry_delays_s=(0.0, 0.0)))
    with FakeHub() as hub:
        hub_variables = {"HF_TOKEN": hub.token, "HF_ADAPTER_REPO_ID": "tester/coach", "HF_ENDPOINT": hub.url}
        for name, value in hub_variables.items():
            monkeypatch.setenv(name, value)
        hub.fail_next("create", 503, 503, 503)  # the upload's first try and both retries
        home_storage = Path(PREFECT_LOCAL_STORAGE_PATH.value())
        before = set(home_storage.iterdir()) if home_storage.is_dir() else set()
        failed = pipeline(data_dir=data, adapter_dir=adapter, gate=False, release=release, return_state=True)
        assert failed.is_failed()
        first = task_states(failed.state_details.flow_run_id)
        assert first["train-adapter"] == "Completed" and first["evaluate-adapter"] == "Completed"
        assert first["upload-adapter"] == "Failed" and not hub.repos
        weights = file_sha256(adapter / "adapter_model.safetensors")  # placed before the upload failed
        for written in set(home_storage.iterdir()) - before if home_storage.is_dir() else ():
            written.unlink()  # what this run left in the Prefect home is gone, as in a new container
        run_id = str(failed.state_details.flow_run_id)
        env = os.environ | {"PREFECT_API_URL": prefect_api_url, "PREFECT_HOME": str(tmp_path / "clean-home")}
        root = Path(__file__).resolve().parents[1]
        retried = subprocess.run(
            [sys.executable, "-m", "prefect", "flow-run", "retry", run_id,
             "--entrypoint", "flows/pipeline.py:pipeline"],
            env=env, cwd=root, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert retried.returncode == 0, retried.stdout[-3000:] + retried.stderr[-3000:]
        uploaded = hub.repo("tester/coach").files["adapter_model.safetensors"]
        assert uploaded == (adapter / "adapter_model.safetensors").read_bytes()
    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(failed.state_details.flow_run_id)
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id]))
        )
        names = sorted(client.read_flow(child.flow_id).name for child in children)
    assert parent.state.is_completed() and parent.state.name == "Published"
    assert names.count("build-dataset") == 1  # the finished sub-flow was reused, not run again
    retried_states = task_states(parent.id)
    assert retried_states["filter-poses"] == "Completed"  # as the first attempt left it
    assert retried_states["train-adapter"] == "Cached" and retried_states["upload-adapter"] == "Completed"
    assert file_sha256(adapter / "adapter_model.safetensors") == weights

    monkeypatch.delenv("HF_ADAPTER_REPO_ID")  # the rerun keeps the adapter here
    again = pipeline(data_dir=data, adapter_dir=adapter, gate=False, release=release, return_state=True)
    states = task_states(again.state_details.flow_run_id)
    assert again.is_completed() and states["train-adapter"] == "Cached" and states["evaluate-adapter"] == "Cached"
    assert all(states[name] == "Cached" for name in DATASET_TASKS)
    assert file_sha256(adapter / "adapter_model.safetensors") == weights
    artifacts = run_artifacts([failed.state_details.flow_run_id, again.state_details.flow_run_id])
    assert local_references(artifacts, tmp_path, Path.home()) == []
