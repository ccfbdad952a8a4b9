"""The flows with profile=modal, rehearsed: every Modal function run in a local process on a directory volume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import GeminiFake
from tests.fakes.hub import FakeHub
from tests.rehearsal import rehearsal_calls

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally:UserWarning")


def _suite(photos, root):
    """Two multiple-choice and two form items on the one-person sample photos."""
    from motioncoach.benchmarks.suite import BenchmarkItem, SuiteInfo, write_suite

    (root / "images").mkdir(parents=True)
    items = []
    for number, path in enumerate(sorted(p for p in photos.rglob("*") if p.stem in ("astronaut", "cameraman"))):
        shutil.copyfile(path, root / "images" / path.name)
        common = {"image": f"images/{path.name}", "activity": "standing", "source": "a coach"}
        items.append(BenchmarkItem(id=f"q{number}", choices=["Stand tall", "Bend the knees"], answer=number, **common))
        items.append(BenchmarkItem(id=f"f{number}", form_ok=bool(number), **common))
    return write_suite(root, items, SuiteInfo(name="standing", license="test photos")).root


def _answer(call) -> str:
    """Gemini's stand-in: option 1 for a multiple-choice question, a grounded correction otherwise."""
    from tests.fakes.server import grounded_label

    return json.dumps({"answer": 1}) if "Option 1:" in call.prompt else grounded_label(call.prompt).to_json()


@pytest.mark.e2e
@pytest.mark.timeout(1500)
def test_rehearsed_modal_run_publishes_from_the_volume_then_reruns(tmp_path, prefect_api_url, place_tiny_model):
    """`motioncoach run --profile modal` rehearsed like a user would, nothing of ours patched: a folder
    of photos, Gemini (a protocol fake), an adapter over --max-download-mb merged on the volume, evaluated
    as merged weights, and uploaded to the Hub with the merged model from the volume (a stand-in that takes
    weights through Git LFS), then an unchanged rerun."""
    import hashlib

    from motioncoach.sources.samples import assemble_samples

    photos = assemble_samples(tmp_path / "photos")
    volume, data, adapter = tmp_path / "volume", tmp_path / "data", tmp_path / "lora-adapter"
    suite = _suite(photos, tmp_path / "suite")
    command = [
        sys.executable, "-m", "cli.main", "run", "--profile", "modal", "--source", str(photos),
        "--labeler", "gemini", "--rehearse-volume", str(volume), "--data-dir", str(data),
        "--adapter-dir", str(adapter), "--max-download-mb", "0", "--no-gate", "--audit", "0",
        "--benchmark", str(suite),
    ]  # fmt: skip
    place_tiny_model(volume / "models" / "tiny-qwen3-vl")  # the rehearsal's base model, built once per test run
    with GeminiFake(api_key="rehearsal-key", answer=_answer) as gemini, FakeHub() as hub:
        env = os.environ | {
            "GEMINI_API_KEY": "rehearsal-key",
            "GOOGLE_GEMINI_BASE_URL": gemini.base_url,
            "HF_TOKEN": hub.token,
            "HF_ADAPTER_REPO_ID": "tester/motioncoach-rehearsal",
            "HF_MERGED_REPO_ID": "tester/motioncoach-rehearsal-merged",
            "HF_ENDPOINT": hub.url,
            "HF_HUB_DISABLE_XET": "1",
            "PREFECT_API_URL": prefect_api_url,  # the test run's Prefect server
            "MOTIONCOACH_POSE_SHARDS": "2",  # as many pose shards as the test needs
        }
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200, cwd=ROOT)
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
        calls = rehearsal_calls(volume)
        assert calls == [
            "app_version",  # the deployed app is this checkout's code, before any work
            "hub_account",  # the pipeline's Hub preflight: the secret's token may write the repos
            "download_images",
            "filter_pose_shard",
            "filter_pose_shard",
            "merge_pose_shards",
            "label_shard",
            "merge_label_shards",
            "write_dataset",
            "hub_account",  # finetune's own preflight
            "download_base_model",
            "train",
            "package_adapter",
            "merge_adapter",  # the release vLLM loads whole
            "evaluate_adapter",  # on the merged weights
            "benchmark_models",  # base and merged release on the human-labelled suite, where the weights are
            "benchmark_teacher",  # the teacher where its secret is
            "upload_adapter",
            "upload_merged",
        ]
        assert gemini.requests > 0
        benchmark = json.loads((adapter / "lineage.json").read_text())["benchmark"]
        assert set(benchmark["models"]) == {"base", "adapter", "teacher"} and benchmark["items"] == 4
        assert benchmark["models"]["teacher"]["mcq_accuracy"] == 0.5  # it answers option 1; one of two is right
        # The weights stayed on the volume: the adapter dir has the release and the command that fetches them.
        remote = json.loads((adapter / "modal-adapter.json").read_text())
        assert remote["command"].startswith("modal volume get --force qwen-finetune-data data/adapters/")
        assert not (adapter / "adapter_model.safetensors").exists()
        assert {"README.md", "eval.json", "lineage.json"} <= {p.name for p in adapter.iterdir()}
        on_volume = (volume / remote["path"] / "adapter_model.safetensors").read_bytes()
        repo = hub.repo("tester/motioncoach-rehearsal")
        assert repo.private and repo.files["adapter_model.safetensors"] == on_volume
        assert hub.lfs_objects[hashlib.sha256(on_volume).hexdigest()] == on_volume  # through Git LFS
        # The card went up from beside the weights; the local one then records where the upload landed.
        assert repo.files["README.md"] == (volume / remote["path"] / "README.md").read_bytes() and not hub.errors
        assert repo.files["README.md"].startswith(b"---\n") and b"peft" in repo.files["README.md"]
        lineage = json.loads((adapter / "lineage.json").read_text())
        assert lineage["hub"]["status"] == "uploaded"
        # The card tells the truth on Modal: the teacher's spend from the store on the volume, the folder by name.
        assert lineage["total_cost_usd"] > 0 and lineage["cost"][0]["labels"] >= 1
        assert [(s["kind"], s["name"]) for s in lineage["sources"]] == [("folder", "photos")]
        assert not [p.name for p in adapter.iterdir() if p.name.startswith(".")]
        assert list((adapter / "gallery").glob("*.png"))  # drawn on the volume, where the photos are
        assert (data / "pose_dataset.jsonl").read_bytes() == (volume / "data" / "pose_dataset.jsonl").read_bytes()
        assert json.loads(next((data / "runs").glob("*/modal_call.json")).read_text())["state"] == "finished"
        # The evaluation measured the merged release, which went up next to the adapter.
        merged = volume / remote["merged"]["path"]
        assert (merged / "config.json").is_file() and (merged / "motioncoach-merge.json").is_file()
        assert lineage["serving"]["served_as"].startswith("the merged release (") and lineage["serving"]["placement"]
        assert lineage["serving"]["placement"]["vision_tower"] > 0
        assert lineage["merged_hub"]["status"] == "uploaded"
        merged_repo = hub.repo("tester/motioncoach-rehearsal-merged")
        assert merged_repo.files["model.safetensors"] == (merged / "model.safetensors").read_bytes()
        # The run dir on the volume keeps no optimizer state after packaging; the lineage says what is left.
        assert not list(volume.glob("data/runs/*/checkpoint-*/optimizer.pt"))
        assert lineage["run_dir"]["optimizer_state_bytes"] == 0
        # Every call's volume paths were the volume's: nothing of a call's private mount leaked into a file.
        assert not [p for p in volume.rglob("*.json*") if ".rehearsal" not in p.parts and b"/mount/" in p.read_bytes()]

        gemini.reset_counters()
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200, cwd=ROOT)
        assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
        # Pose filter and training come back Cached; the store on the volume answers the labels. The
        # dataset is rewritten (the same rows): a teacher's label report is not yet a stable cache key.
        assert rehearsal_calls(volume)[len(calls) :] == [
            "app_version", "hub_account", "download_images", "label_shard", "merge_label_shards", "write_dataset",
            "hub_account", "package_adapter", "merge_adapter", "upload_adapter", "upload_merged",
        ]  # fmt: skip
        assert gemini.requests == 0


@pytest.mark.e2e
def test_cli_modal_profile_without_credentials_fails_fast(tmp_path, prefect_api_url):
    """Before any work: no data dir, no flow run on the server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs_before = len(client.read_flow_runs(limit=200))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")} | {
        "HOME": str(tmp_path), "PREFECT_API_URL": prefect_api_url,
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--profile", "modal", "--data-dir", str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Modal credentials are missing: run `modal token new`, or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET." in (
        result.stderr
    )
    assert not (tmp_path / "data").exists()
    with get_client(sync_client=True) as client:
        assert len(client.read_flow_runs(limit=200)) == runs_before
