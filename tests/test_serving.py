"""The served model: one inference path from a photo to the app's AnalysisResponse, and merged weights
that equal base + adapter (vision tower and mergers included)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from motioncoach.dataset import read_jsonl
from motioncoach.serving.merge import lora_placement, merge_adapter, merged_from
from motioncoach.serving.prompt import row_prompt
from tests.release_data import tiny_adapter


@pytest.fixture(scope="module")
def release(tmp_path_factory, place_tiny_model):
    """The sample photos through the real pose filter (yolo11n) and the rules into a dataset, a LoRA adapter
    with vision-tower LoRA trained on it, and that adapter merged (float32)."""
    from motioncoach.config import PoseFilterConfig, SourceConfig, SplitConfig
    from motioncoach.dataset import build_dataset, split_dataset
    from motioncoach.labels.outcomes import label_samples
    from motioncoach.labels.rules import RulesLabeler
    from motioncoach.pose import CACHE_FILE_NAME, filter_poses
    from motioncoach.sources import collect_images

    root = tmp_path_factory.mktemp("serving")
    data_dir = root / "data"
    poses = filter_poses(collect_images(SourceConfig(), data_dir), PoseFilterConfig(), data_dir / CACHE_FILE_NAME)
    labels = label_samples(poses.kept, RulesLabeler())
    dataset = build_dataset(labels.labeled, data_dir)
    splits = split_dataset(dataset.path, SplitConfig(val_fraction=0.5), data_dir / "splits")
    data = SimpleNamespace(data_dir=data_dir, splits=splits, samples=poses.kept, dataset=dataset.path)
    model = place_tiny_model(data_dir / "models" / "tiny-qwen3-vl")
    trained = tiny_adapter(data_dir, model)
    merged = root / "merged"
    merge_adapter(str(model), trained.checkpoint, merged, dtype="float32", max_pixels=trained.config.max_pixels)
    return SimpleNamespace(data=data, model=model, adapter=trained.checkpoint, merged=merged, trained=trained)


def _inputs(processor, prompt):
    from motioncoach.serving.backends import chat_messages

    text = processor.apply_chat_template(chat_messages(prompt, {"type": "image"}), add_generation_prompt=True,
                                         tokenize=False)  # fmt: skip
    return processor(text=[text], images=[prompt.pixels()], return_tensors="pt")


def test_merged_weights_give_the_logits_of_base_plus_adapter_on_a_real_image_row(release):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    placement = lora_placement(release.adapter)
    assert placement.vision_tower > 0 and placement.merger > 0 and placement.language_model > 0
    row = read_jsonl(release.data.splits.val.path)[0]
    prompt = row_prompt(row, release.data.data_dir, release.trained.config.max_pixels)
    processor = AutoProcessor.from_pretrained(release.merged)  # the merged folder carries its own processor
    inputs = _inputs(processor, prompt)
    assert inputs["pixel_values"].numel() > 0  # the photo is in the forward pass: the vision LoRA counts

    base = AutoModelForImageTextToText.from_pretrained(release.model, dtype=torch.float32)
    kept = 64  # the logits of the answer's last positions: every LoRA module and the photo still go into them
    with torch.no_grad():
        plain = base(**inputs, logits_to_keep=kept).logits
        adapted = PeftModel.from_pretrained(base, release.adapter).eval()(**inputs, logits_to_keep=kept).logits
        merged = AutoModelForImageTextToText.from_pretrained(release.merged, dtype=torch.float32)(
            **inputs, logits_to_keep=kept
        ).logits
    assert (adapted - plain).abs().max() > 1e-3  # the adapter changes the answer: the comparison means something
    assert torch.allclose(merged, adapted, atol=1e-5, rtol=1e-4), (merged - adapted).abs().max()


def test_a_merge_is_kept_when_its_adapter_is_the_same_and_replaced_when_not(release, tmp_path):
    before = {p.name: p.stat().st_mtime_ns for p in release.merged.iterdir()}
    pixels = release.trained.config.max_pixels
    again = merge_adapter(str(release.model), release.adapter, release.merged, dtype="float32", max_pixels=pixels)
    assert {p.name: p.stat().st_mtime_ns for p in release.merged.iterdir()} == before
    assert again == merged_from(release.merged)
    assert {"chat_template.jinja", "config.json", "model.safetensors"} <= set(before)

    other = tmp_path / "other-adapter"
    other.mkdir()
    for name in ("adapter_config.json",):
        (other / name).write_bytes((release.adapter / name).read_bytes())
    from safetensors.torch import load_file, save_file

    weights = {k: v * 2 for k, v in load_file(release.adapter / "adapter_model.safetensors").items()}
    save_file(weights, other / "adapter_model.safetensors")
    copy = tmp_path / "merged"
    merge_adapter(str(release.model), release.adapter, copy, dtype="float32", max_pixels=pixels)
    first = (copy / "model.safetensors").read_bytes()
    record = merge_adapter(str(release.model), other, copy, dtype="float32", max_pixels=pixels)
    assert merged_from(copy) == record and (copy / "model.safetensors").read_bytes() != first


def test_a_merged_release_resizes_photos_as_training_did_and_holds_what_vllm_and_transformers_load(release, tmp_path):
    """The processor of a merged folder carries the run's MAX_PIXELS (from the lineage beside the adapter, or
    given), not the base's: Qwen3-VL's own is 16.7 M pixels, about 12k visual tokens for a phone photo."""
    import shutil

    from transformers import AutoProcessor

    def saved_size(folder: Path) -> tuple[dict, dict, dict]:
        nested = json.loads((folder / "processor_config.json").read_text())["image_processor"]["size"]
        flat = json.loads((folder / "preprocessor_config.json").read_text())["size"]
        loaded = AutoProcessor.from_pretrained(folder).image_processor.size
        return nested, flat, {"longest_edge": loaded.longest_edge, "shortest_edge": loaded.shortest_edge}

    trained = {"longest_edge": release.trained.config.max_pixels, "shortest_edge": 4096}
    assert saved_size(release.merged) == (trained, trained, trained)
    files = {p.name for p in release.merged.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "chat_template.jinja", "tokenizer.json",
            "tokenizer_config.json", "processor_config.json", "preprocessor_config.json",
            "video_preprocessor_config.json", "motioncoach-merge.json"} <= files  # fmt: skip

    released = tmp_path / "lora-adapter"  # a release folder: the adapter and its lineage.json
    shutil.copytree(release.adapter, released)
    (released / "lineage.json").write_text(json.dumps({"training": {"config": {"max_pixels": 1003520}}}))
    record = merge_adapter(str(release.model), released, tmp_path / "merged", dtype="float32")
    production = {"longest_edge": 1003520, "shortest_edge": 4096}
    assert record.max_pixels == 1003520 and saved_size(tmp_path / "merged") == (production,) * 3
    assert json.loads((tmp_path / "merged" / "lineage.json").read_text())["training"]["config"]["max_pixels"] == 1003520


def _b64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def test_photos_arrive_as_base64_or_data_urls_and_anything_else_is_refused_in_one_line():
    from motioncoach.serving.photo import PhotoError, decode_base64_image

    raw = bytes(range(256))
    assert decode_base64_image(base64.b64encode(raw).decode()) == raw
    assert decode_base64_image(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert decode_base64_image("data:image/jpeg;base64," + base64.b64encode(raw).decode()) == raw
    for text, reason in [
        ("not base64 at all!", "neither base64 nor a data: URL"),
        ("data:text/plain;base64,aGk=", "holds text/plain, not an image"),
        ("data:image/png,rawbytes", "not base64-encoded"),
    ]:
        with pytest.raises(PhotoError, match=reason):
            decode_base64_image(text)


def test_answers_are_read_with_the_teachers_checks(release):
    from motioncoach.serving.answer import read_answer

    sample = release.data.samples[0]
    teacher = next(
        json.loads(row["messages"][2]["content"])
        for row in read_jsonl(release.data.dataset)
        if row["images"][0].startswith(f"images/{sample.sha256}")
    )
    good = read_answer("a", json.dumps(teacher), sample)
    assert good.problem is None and good.response.status == teacher["status"]
    served = good.response.model_dump(exclude={"feedback_points"})
    fields = ("status", "error_message", "positive_note", "progress_score")
    assert served == {**{name: teacher[name] for name in fields}, "improvement_delta": None}
    prose = read_answer("b", "Your form looks great!", sample)
    assert prose.label is None and prose.response.status == "error"
    assert prose.response.error_message.startswith("The model's answer could not be used: not valid JSON")
    assert "Your form looks great" not in prose.response.model_dump_json()  # the raw text stays in the log


# ---- The HTTP server ----


@pytest.fixture(scope="module")
def server(release):
    """`motioncoach serve` as the command builds it, on a free local port, in a thread of this process."""
    import socket
    import threading
    import time

    import uvicorn

    from motioncoach.serving.backends import TransformersBackend
    from motioncoach.serving.coach import Coach
    from motioncoach.serving.http import create_app

    backend = TransformersBackend(release.model, release.adapter, max_new_tokens=12, batch_size=4)
    coach = Coach(backend, release.trained.config.max_pixels)
    app = create_app(coach, release="tiny + adapter", max_batch=4, wait_s=0.5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uvicorn_server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", app=app, coach=coach)
    uvicorn_server.should_exit = True
    thread.join(timeout=10)


def _photo(release, name: str) -> Path:
    return next(p for p in (release.data.data_dir / "raw" / "samples").rglob(name))


def test_the_server_answers_health_a_photo_and_refuses_a_body_that_is_no_photo(server, release):
    import httpx

    from motioncoach.labels.response import AnalysisResponse

    health = httpx.get(f"{server.url}/health", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    astronaut = httpx.post(
        f"{server.url}/v1/coach", json={"image": _b64(_photo(release, "astronaut.png")), "activity": "standing"},
        timeout=300,
    )  # fmt: skip
    assert astronaut.status_code == 200
    answer = AnalysisResponse.model_validate(astronaut.json())
    assert answer.status == "error" and answer.error_message.startswith("The model's answer could not be used")
    several = httpx.post(
        f"{server.url}/v1/coach",
        json={"image": "data:image/jpeg;base64," + _b64(_photo(release, "zidane.jpg")), "activity": "football"},
        timeout=300,
    )
    assert several.status_code == 200 and several.json()["status"] == "low_confidence"
    assert (
        several.json()["error_message"] == "The photo shows 2 people: the coach needs exactly one person in the frame."
    )
    for body, reason in [
        ({"image": base64.b64encode(b"squat notes, not a photo").decode(), "activity": "squat"}, "not an image"),
        ({"image": "%%%", "activity": "squat"}, "the image is neither base64 nor a data: URL"),
        ({"activity": "squat"}, "image: Field required"),
        ({"image": "aGk=", "activity": "squat", "extra": 1}, "extra: Extra inputs are not permitted"),
    ]:
        refused = httpx.post(f"{server.url}/v1/coach", json=body, timeout=30)
        assert refused.status_code == 422 and refused.json() == {"detail": reason}
    not_json = httpx.post(f"{server.url}/v1/coach", content=b"{oops", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and "\n" not in not_json.json()["detail"]
    assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200  # still serving


def test_photos_coached_in_one_batch_get_the_answers_each_gets_alone(release):
    """The transformers backend answers a batch of prompts (left-padded together) as it answers each alone."""
    from motioncoach.serving.backends import TransformersBackend

    rows = read_jsonl(release.data.splits.val.path) + read_jsonl(release.data.splits.train.path)
    prompts = [row_prompt(row, release.data.data_dir, release.trained.config.max_pixels) for row in rows[:3]]
    backend = TransformersBackend(release.merged, max_new_tokens=12, batch_size=3)
    together = backend.generate(prompts)
    assert len(together) == 3
    assert together == [backend.generate([prompt])[0] for prompt in prompts]


def test_the_parity_bench_dry_run_finds_peft_and_the_merged_release_answer_alike(release, tmp_path):
    """bench/serve_parity.py --dry: the transformers half of the comparison, on the same adapter and rows."""
    import importlib.util

    bench = Path(__file__).resolve().parents[1] / "bench" / "serve_parity.py"
    spec = importlib.util.spec_from_file_location("serve_parity", bench)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answers = tmp_path / "answers.json"
    results = module.main([
        "--dry", "--data-dir", str(release.data.data_dir), "--adapter", str(release.adapter),
        "--max-new-tokens", "8", "--work-dir", str(tmp_path / "work"), "--answers-out", str(answers),
    ])  # fmt: skip
    rows = len(read_jsonl(release.data.splits.val.path))
    assert results["rows"] == rows > 0 and set(results["setups"]) == {"peft", "merged-hf"}
    assert results["setups"]["merged-hf"]["same_as_peft"] == rows  # the merge keeps every greedy answer
    assert results["lora_modules"]["vision_tower"] > 0
    texts = json.loads(answers.read_text())
    assert texts["peft"] == texts["merged-hf"] and all(isinstance(t, str) for t in texts["peft"])


class _Recording:
    """A backend that keeps the prompts it is asked, around a real one."""

    def __init__(self, backend):
        self.backend, self.name, self.prompts = backend, backend.name, []

    def generate(self, prompts):
        self.prompts += list(prompts)
        return self.backend.generate(prompts)


def test_the_evaluation_and_the_server_ask_the_same_question_of_a_photo_and_read_the_same_answer(release):
    """A validation row as the evaluation asks it, and the same photo sent to the coach (detected again by
    YOLO at serving time): the same system turn, pose block and pixels, so the same greedy answer."""
    import numpy as np

    from motioncoach.evaluation.items import load_items
    from motioncoach.serving.answer import answer_prompts
    from motioncoach.serving.backends import TransformersBackend
    from motioncoach.serving.coach import Coach, CoachRequest
    from motioncoach.serving.photo import read_photo

    max_pixels = release.trained.config.max_pixels
    items, _ = load_items(release.data.splits.val.path, release.data.data_dir)
    item = items[0]
    evaluated = item.prompt(max_pixels)
    backend = _Recording(TransformersBackend(release.model, release.adapter, max_new_tokens=12, batch_size=2))
    (from_eval,) = answer_prompts(backend, [evaluated], [item.sample])
    photo_path = release.data.data_dir / item.image
    photo = read_photo(photo_path.read_bytes(), photo_path.name)
    (coached,) = Coach(backend, max_pixels).coach([CoachRequest(photo=photo, activity=item.sample.activity)])
    served = backend.prompts[-1]
    assert (served.system, served.user) == (evaluated.system, evaluated.user)
    assert np.array_equal(np.asarray(served.pixels()), np.asarray(evaluated.pixels()))
    assert coached.answer.text == from_eval.text and coached.response == from_eval.response


def test_the_modal_endpoint_rehearsed_serves_the_chosen_release_from_the_volume(release, tmp_path):
    """The endpoint's own start (remote/app.py CoachEndpoint.start) on a stand-in volume: it reads
    /data/serving.json, loads the merged release from the volume and answers /health and /v1/coach."""
    import shutil

    from fastapi.testclient import TestClient

    from motioncoach.errors import ConfigurationError
    from motioncoach.labels.response import AnalysisResponse
    from motioncoach.serving.endpoint import ServingConfig, start_endpoint

    volume = tmp_path / "volume"
    serving = volume / "serving.json"
    volume.mkdir()
    with pytest.raises(ConfigurationError, match=r"serving.json is missing: choose the release to serve with"):
        start_endpoint(serving, volume, rehearsal=True)
    chosen = ServingConfig(model="/data/data/merged/run-1", max_pixels=release.trained.config.max_pixels,
                           pose_weights="yolo11n-pose.pt", max_new_tokens=12)  # fmt: skip
    serving.write_text(chosen.model_dump_json())
    with pytest.raises(ConfigurationError, match=r"/data/data/merged/run-1 on the volume holds no model"):
        start_endpoint(serving, volume, rehearsal=True)
    shutil.copytree(release.merged, volume / "data" / "merged" / "run-1")
    endpoint = start_endpoint(serving, volume, rehearsal=True)
    with TestClient(endpoint.app) as client:
        assert client.get("/health").json()["status"] == "ok"
        answer = client.post("/v1/coach", json={"image": _b64(_photo(release, "astronaut.png")), "activity": "yoga"})
        assert answer.status_code == 200
        assert AnalysisResponse.model_validate(answer.json()).status == "error"  # the random tiny model's prose
        refused = client.post("/v1/coach", json={"image": "%%%", "activity": "yoga"})
        assert refused.status_code == 422


def test_the_coach_command_answers_every_readable_photo_and_names_the_rest(release, tmp_path):
    """`motioncoach coach PHOTO...`: one AnalysisResponse JSON line per photo, in order, an overlay each;
    a missing file is one line on stderr naming it, and the other photos are still answered."""
    from PIL import Image
    from typer.testing import CliRunner

    from cli.main import app
    from motioncoach.labels.response import AnalysisResponse

    photos = [_photo(release, "astronaut.png"), _photo(release, "zidane.jpg")]
    missing = tmp_path / "no-such-photo.jpg"
    overlays = tmp_path / "overlays"
    result = CliRunner().invoke(app, [
        "coach", str(photos[0]), str(missing), str(photos[1]), "--adapter", str(release.adapter),
        "--max-new-tokens", "12", "--overlay-dir", str(overlays),
    ])  # fmt: skip
    assert result.exit_code == 1  # one photo could not be read
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    answers = [AnalysisResponse.model_validate_json(line) for line in lines]
    assert [a.status for a in answers] == ["error", "low_confidence"]  # the random tiny model writes no label
    assert answers[0].error_message.startswith("The model's answer could not be used")
    assert answers[1].error_message == "The photo shows 2 people: the coach needs exactly one person in the frame."
    assert f"error: {missing}: no such file" in result.stderr
    # A bare training checkpoint records neither its pixels nor its pose model: the command says what it uses.
    assert f"note: {release.adapter.resolve()} records no pose model: poses are detected with yolo11n-pose.pt" in (
        result.stderr
    )
    drawn = sorted(p.name for p in overlays.iterdir())
    assert drawn == ["astronaut.png", "zidane.png"]
    with Image.open(overlays / "zidane.png") as overlay:
        assert overlay.format == "PNG" and overlay.size[0] >= 512  # the photo, drawn on, with its caption
