"""Evaluation of a real adapter: a tiny Qwen3-VL fine-tuned by MS-Swift, answering the validation
split with and without its LoRA, next to the rules labeler; then the whole release as Prefect tasks.
"""

from __future__ import annotations

import json
import shutil

import pytest
from prefect import flow

from motioncoach.config import Profile
from motioncoach.dataset import read_jsonl
from motioncoach.evaluation import (
    ANSWERS_FILE,
    EVAL_FILE,
    EvalReport,
    GateConfig,
    decide,
    load_items,
    run_evaluation,
)
from motioncoach.labels.grounding import grounding_problems
from motioncoach.publish import CARD_FILE, LINEAGE_FILE, ReleaseConfig
from motioncoach.training.session import TrainedAdapter
from tasks.evaluate import eval_config_for, release_gate
from tasks.evaluate import evaluate_adapter as evaluate_task
from tasks.hub import forward_state, hub_preflight, release_state, upload_adapter, upload_dataset, write_release
from tasks.publish import place_adapter
from tasks.storage import persist_in
from tests.fakes.hub import FakeHub
from tests.release_data import build_release_data, tiny_adapter

HF_VARIABLES = ("HF_TOKEN", "HF_ADAPTER_REPO_ID", "HF_DATASET_REPO_ID", "HF_ENDPOINT")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, place_tiny_model):
    """The release data dir, and a LoRA adapter of the tiny Qwen3-VL trained on it."""
    data = build_release_data(tmp_path_factory.mktemp("evaluation"))
    return data, tiny_adapter(data.data_dir, place_tiny_model(data.data_dir / "models" / "tiny-qwen3-vl"))


def test_validation_rows_take_their_pose_from_the_yolo_cache_or_the_prompt(tmp_path):
    data = build_release_data(tmp_path)
    items, skipped = load_items(data.splits.val.path, data.data_dir)
    assert not skipped and {i.pose_from for i in items} == {"yolo_cache"}
    by_sha = {s.sha256: s for s in data.samples}
    assert all(item.sample.keypoints == by_sha[item.sample.sha256].keypoints for item in items)

    (data.data_dir / "yolo_cache.json").unlink()
    rebuilt, _ = load_items(data.splits.val.path, data.data_dir)
    for item, original in zip(rebuilt, items, strict=True):
        assert item.pose_from == "prompt" and (item.sample.width, item.sample.height) == (
            original.sample.width,
            original.sample.height,
        )
        assert set(item.sample.confident()) == set(original.sample.confident())
        assert not grounding_problems(item.teacher, item.sample)  # the teacher's label is grounded either way

    broken = tmp_path / "broken.jsonl"
    row = read_jsonl(data.splits.val.path)[0]
    row["messages"][2]["content"] = "{not json"
    broken.write_text(json.dumps(row) + "\n")
    assert load_items(broken, data.data_dir) == ([], ["row 1: the teacher's label does not parse (1 errors)"])


def test_base_adapter_and_rules_rows_on_a_real_tiny_adapter(tiny, tmp_path):
    data, trained = tiny
    # The plain entry a Modal function calls: a JSON request in, eval.json and the gallery out.
    result = run_evaluation(
        {
            "base_model": trained.config.base_model,
            "adapter_dir": str(trained.checkpoint),
            "val_path": str(data.splits.val.path),
            "data_dir": str(data.data_dir),
            "config": {"max_new_tokens": 8, "max_pixels": trained.config.max_pixels, "gallery_images": 2},
            "out_dir": str(tmp_path),
        }
    )
    report = EvalReport.model_validate(json.loads(json.dumps(result)))  # what crosses the wire reads back
    assert [m.model for m in report.models] == ["base", "adapter", "rules"]
    assert len(report.rows) == data.splits.val.rows == report.val_rows and not report.skipped
    assert all(isinstance(row.answers[m], str) for row in report.rows for m in ("base", "adapter"))
    rules = report.metrics("rules")
    # The teacher here is the rules labeler and the pose comes from the YOLO cache: the baseline row is exact.
    assert (rules.schema_valid_rate, rules.grounded_rate, rules.agreement, rules.score_mae) == (1.0, 1.0, 1.0, 0.0)
    # A random model cannot write an 8-token label, so the gate keeps this adapter off the Hub.
    assert report.metrics("base").schema_valid_rate == report.metrics("adapter").schema_valid_rate == 0.0
    decision = decide(report, GateConfig())
    assert not decision.passed and "schema_valid_rate 0.000 vs base 0.000" in decision.reason

    saved = json.loads((tmp_path / EVAL_FILE).read_text())
    assert saved == report.summary() and [m["model"] for m in saved["models"]] == ["base", "adapter", "rules"]
    assert len(read_jsonl(tmp_path / ANSWERS_FILE)) == len(report.rows)
    pngs = sorted((tmp_path / "gallery").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_the_adapter_is_switched_off_for_the_base_answers(tiny):
    """One loaded model answers as base and as adapter; the adapter's trained weights change the logits."""
    import torch

    from motioncoach.serving.backends import TransformersBackend

    _, trained = tiny
    models = TransformersBackend(trained.config.base_model, trained.checkpoint, max_new_tokens=1, batch_size=1)
    ids = torch.tensor([[151644, 872, 198, 40, 151645]])
    with torch.no_grad():
        adapted = models.model(input_ids=ids).logits
        with models.model.disable_adapter():
            plain = models.model(input_ids=ids).logits
    assert not torch.allclose(adapted, plain)
    with torch.no_grad():
        assert torch.allclose(models.model(input_ids=ids).logits, adapted)  # back on after the context


@flow(name="release-under-test")
def _release(trained: TrainedAdapter, data_dir, adapter_dir, release: ReleaseConfig):
    """The release half of the finetune flow, as flows/finetune.py wires it after training."""
    from motioncoach.dataset import load_split

    hub_preflight(release)
    splits = load_split(data_dir)
    placed = place_adapter(trained, adapter_dir)
    config = eval_config_for(Profile.local, trained).model_copy(update={"max_new_tokens": 8})
    report = persist_in(data_dir, evaluate_task)(trained, splits, Profile.local, data_dir, config)
    decision = release_gate(report, release.gate)
    lineage = write_release(trained, splits, report, decision, release, placed, data_dir)
    if release.push_dataset:
        lineage = upload_dataset(lineage, splits, release, placed, data_dir)
    status = upload_adapter(lineage, release, placed)
    return release_state(status, placed)


@flow(name="pipeline-under-test")
def _pipeline(trained: TrainedAdapter, data_dir, adapter_dir, release: ReleaseConfig):
    """As motioncoach-pipeline ends: in the state its finetune subflow ended in."""
    return forward_state(_release(trained, data_dir, adapter_dir, release, return_state=True))


def test_release_runs_as_prefect_tasks_gated_then_published(tiny, tmp_path, monkeypatch, task_states):
    data, trained = tiny
    for name in HF_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    adapter_dir = tmp_path / "lora-adapter"
    state = _pipeline(trained, data.data_dir, adapter_dir, ReleaseConfig(), return_state=True)
    assert state.is_completed() and state.name == "Kept local" and state.result() == adapter_dir
    assert "HF_ADAPTER_REPO_ID is not set" in state.message
    for name in ("adapter_model.safetensors", CARD_FILE, EVAL_FILE, LINEAGE_FILE, "loss.png"):
        assert (adapter_dir / name).is_file(), name
    lineage = json.loads((adapter_dir / LINEAGE_FILE).read_text())
    assert lineage["hub"]["status"] == "skipped" and not lineage["gate"]["passed"]
    card = (adapter_dir / CARD_FILE).read_text()
    assert "| rules | 1.000 | 1.000 | 1.000 | 0.000 | 1.000 | 1.000 | 1.000 |" in card
    assert list((adapter_dir / "gallery").glob("*.png"))

    with FakeHub() as hub:
        monkeypatch.setenv("HF_TOKEN", hub.token)
        monkeypatch.setenv("HF_ADAPTER_REPO_ID", "tester/motioncoach-lora")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        release = ReleaseConfig(gate=GateConfig(enabled=False), push_dataset=True)
        again = _release(trained, data.data_dir, adapter_dir, release, return_state=True)
        assert again.is_completed() and again.name == "Published", again.message
        assert task_states(again.state_details.flow_run_id)["evaluate-adapter"] == "Cached"
        uploaded = hub.repo("tester/motioncoach-lora").files
        assert {"adapter_model.safetensors", CARD_FILE, EVAL_FILE} <= set(uploaded)
        assert b"gate disabled" in uploaded[CARD_FILE] and b"- tester/motioncoach-lora-dataset" in uploaded[CARD_FILE]
        assert "train.jsonl" in hub.repo("tester/motioncoach-lora-dataset", kind="dataset").files
    lineage = json.loads((adapter_dir / LINEAGE_FILE).read_text())
    assert lineage["hub"]["status"] == "uploaded" and lineage["dataset_hub"]["status"] == "uploaded"
    assert hub.token not in (adapter_dir / LINEAGE_FILE).read_text()
    shutil.rmtree(adapter_dir)
