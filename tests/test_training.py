"""LoRA fine-tuning: one real `swift sft` run on a tiny random Qwen3-VL, then its outputs."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from motioncoach.config import TrainConfig, local_train_config
from motioncoach.training import (
    adapter_size_bytes,
    build_tiny_qwen3_vl,
    copy_adapter,
    find_best_checkpoint,
    generate_with_adapter,
    latest_resumable_checkpoint,
    list_checkpoints,
    plot_losses,
    read_history,
    run_sft,
    swift_env,
    swift_launcher,
    swift_sft_args,
)
from motioncoach.training.checkpoints import prune_checkpoints, strip_optimizer_state

ASSISTANT = {"activity": "yoga", "score": 7, "cues": ["Keep your back straight."]}


def _photos() -> list:
    """Real photos shipped inside installed packages."""
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = Image.open(f).convert("RGB")
    return [Image.fromarray(data.astronaut()), hopper, Image.fromarray(data.coffee()), Image.fromarray(data.chelsea())]


def _write_dataset(root: Path) -> Path:
    """train.jsonl (3 rows) and val.jsonl (1 row) with images/<sha256>.png relative to root."""
    (root / "images").mkdir(parents=True)
    rows = []
    for i, photo in enumerate(_photos()):
        buf = io.BytesIO()
        photo.save(buf, format="PNG")
        sha = hashlib.sha256(buf.getvalue()).hexdigest()
        (root / "images" / f"{sha}.png").write_bytes(buf.getvalue())
        user = f"<image>Activity: yoga\nKeypoints (x, y, confidence):\nnose 0.5{i} 0.22 0.98\n"
        messages = [
            {"role": "system", "content": "You are a movement coach. Answer with one JSON object."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": json.dumps(ASSISTANT)},
        ]
        rows.append({"messages": messages, "images": [f"images/{sha}.png"]})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    (root / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[3:]))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    """Fine-tune the session's tiny model once, on a tiny dataset, for every test here."""
    tmp = tmp_path_factory.mktemp("training")
    model_dir = tiny_model
    model_sha = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    data_dir = _write_dataset(tmp / "data")
    logs: list[dict] = []
    result = run_sft(
        local_train_config(model_dir),
        dataset=data_dir / "train.jsonl",
        val_dataset=data_dir / "val.jsonl",
        image_root=data_dir,
        output_dir=tmp / "run",
        on_log=logs.append,
    )
    return SimpleNamespace(
        tmp=tmp,
        model_dir=model_dir,
        model_sha=model_sha,
        data_dir=data_dir,
        result=result,
        logs=logs,
    )


def test_checkpoints_hold_a_lora_adapter_and_only_the_resumable_one_keeps_optimizer_state(trained):
    """swift saved checkpoints 2, 4 and 6; what a resume and the release need stays: the last one whole, the
    best one's weights; the rest gave their space back as training went on."""
    checkpoints = list_checkpoints(trained.result.output_dir)
    best = trained.result.best_checkpoint
    assert [c.name for c in checkpoints] == sorted({best.name, "checkpoint-6"}, key=lambda n: int(n.split("-")[1]))
    for checkpoint in checkpoints:
        assert (checkpoint / "adapter_config.json").is_file()
        assert (checkpoint / "adapter_model.safetensors").is_file()
    assert trained.result.last_checkpoint == checkpoints[-1]
    # Resume would pick the newest complete checkpoint, the one with optimizer state.
    assert latest_resumable_checkpoint(trained.result.output_dir) == checkpoints[-1]
    assert (checkpoints[-1] / "optimizer.pt").is_file()
    assert all(not (c / "optimizer.pt").exists() for c in checkpoints[:-1])
    state = strip_optimizer_state(trained.result.output_dir)  # after packaging: no optimizer state at all
    assert state.optimizer_state_bytes == 0 and state.best == best.name
    assert not list(trained.result.output_dir.glob("checkpoint-*/optimizer.pt"))


def test_best_checkpoint_has_the_lowest_eval_loss(trained):
    history = trained.result.history
    assert history == read_history(trained.result.output_dir)
    eval_loss = {p["step"]: p["eval_loss"] for p in history if "eval_loss" in p}
    assert sorted(eval_loss) == [2, 4, 6]
    assert all("loss" in p for p in history) and {p["step"] for p in history} == set(range(1, 7))
    best_step = min(eval_loss, key=eval_loss.get)
    assert trained.result.best_checkpoint.name == f"checkpoint-{best_step}"
    assert trained.result.best_eval_loss == eval_loss[best_step]


def test_progress_reaches_the_caller(trained):
    steps_with_loss = [r["step"] for r in trained.logs if "loss" in r]
    assert steps_with_loss == list(range(1, 7))
    assert [r["step"] for r in trained.logs if "eval_loss" in r] == [2, 4, 6]


def test_lora_weights_trained_and_base_weights_untouched(trained):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    best = trained.result.best_checkpoint
    adapter = load_file(best / "adapter_model.safetensors")
    # Only LoRA matrices were saved: nothing of the base model was trained.
    assert adapter and all(".lora_A." in k or ".lora_B." in k for k in adapter)
    assert any(k.startswith("base_model.model.model.visual.") for k in adapter), "freeze_vit false: ViT gets LoRA"

    base = AutoModelForImageTextToText.from_pretrained(trained.model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, best)
    # lora_B starts at zero, so a non-zero one proves training happened and the adapter loaded.
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)

    saved = load_file(trained.model_dir / "model.safetensors")
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    in_peft = model.get_submodule("base_model.model.model.language_model.layers.0.self_attn.q_proj")
    assert torch.equal(in_peft.base_layer.weight, saved[name])
    # Training read the base model; it never wrote to it.
    assert hashlib.sha256((trained.model_dir / "model.safetensors").read_bytes()).hexdigest() == trained.model_sha


def test_the_adapter_answers_the_first_validation_row_as_peft_generate_does(trained):
    """The proof run after training asks the row as training showed it (system turn, photo first, user turn,
    the photo at the training size), greedily: the same tokens as a plain PEFT generate on those inputs."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from motioncoach.dataset import read_jsonl
    from motioncoach.serving.photo import model_input

    max_pixels = local_train_config(trained.model_dir).max_pixels
    val = trained.data_dir / "val.jsonl"
    text = generate_with_adapter(
        trained.model_dir, trained.result.best_checkpoint, val, trained.data_dir, max_pixels, max_new_tokens=8
    )
    row = read_jsonl(val)[0]
    system, user = row["messages"][0]["content"], row["messages"][1]["content"].replace("<image>", "")
    processor = AutoProcessor.from_pretrained(trained.model_dir)
    messages = [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user}]},
    ]
    chat = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    with Image.open(trained.data_dir / row["images"][0]) as photo:
        inputs = processor(text=[chat], images=[model_input(photo.convert("RGB"), max_pixels)], return_tensors="pt")
    base = AutoModelForImageTextToText.from_pretrained(trained.model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, trained.result.best_checkpoint).eval()
    with torch.no_grad():
        tokens = model.generate(**inputs, max_new_tokens=8, do_sample=False)[0, inputs["input_ids"].shape[1] :]
    assert text == processor.decode(tokens, skip_special_tokens=True)
    assert len(processor.tokenizer(text)["input_ids"]) <= 8


def test_copy_adapter_and_plot(trained, tmp_path):
    dest = tmp_path / "lora-adapter"
    copied = copy_adapter(trained.result.best_checkpoint, dest)
    names = {p.name for p in copied}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= names
    assert "optimizer.pt" not in names and all(p.is_file() for p in copied)
    assert adapter_size_bytes(dest) == sum(p.stat().st_size for p in copied)
    copy_adapter(trained.result.best_checkpoint, dest)  # replacing an existing copy works too
    assert not list(tmp_path.glob(".lora-adapter*"))

    png = plot_losses(trained.result.history, tmp_path / "loss.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_tiny_model_is_idempotent(trained):
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in trained.model_dir.iterdir()}
    assert build_tiny_qwen3_vl(trained.model_dir) == trained.model_dir
    # Nothing was written again: the same files, untouched.
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in trained.model_dir.iterdir()} == before


def test_production_command_keeps_the_recipe(tmp_path):
    config = TrainConfig()
    argv = swift_sft_args(
        config, dataset=tmp_path / "train.jsonl", val_dataset=tmp_path / "val.jsonl", output_dir=tmp_path / "out"
    )
    flags = dict(zip(argv[::2], argv[1::2], strict=True))
    assert all(name.startswith("--") for name in flags)
    assert {
        "--model": "Qwen/Qwen3-VL-32B-Instruct",
        "--model_type": "qwen3_vl",
        "--template": "qwen3_vl",
        "--tuner_type": "lora",
        "--lora_rank": "256",
        "--lora_alpha": "512",
        "--lora_dropout": "0.05",
        "--target_modules": "all-linear",
        "--freeze_vit": "false",
        "--freeze_aligner": "false",
        "--num_train_epochs": "10",
        "--learning_rate": "0.0001",
        "--lr_scheduler_type": "cosine",
        "--per_device_train_batch_size": "2",
        "--gradient_accumulation_steps": "4",
        "--torch_dtype": "bfloat16",
        "--attn_impl": "sdpa",
        "--save_steps": "25",
        "--eval_steps": "25",
        "--gradient_checkpointing": "true",
        "--metric_for_best_model": "eval_loss",
        "--check_model": "false",
        "--add_version": "false",
        "--val_dataset": str((tmp_path / "val.jsonl").resolve()),
    }.items() <= flags.items()
    assert "--max_steps" not in flags and "--resume_from_checkpoint" not in flags
    assert "--train_type" not in flags  # ms-swift 4.6 rejects it

    env = swift_env(config, tmp_path)
    assert env["NPROC_PER_NODE"] == "8"
    assert env["ROOT_IMAGE_DIR"] == str(tmp_path.resolve()) and env["MAX_PIXELS"] == "1003520"
    assert env["HF_HUB_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == "1"
    # Eight processes go through swift's launcher, which starts torchrun.
    assert swift_launcher(config)[1:] == ["-m", "swift.cli.main", "sft"]

    local = local_train_config(tmp_path)
    assert "NPROC_PER_NODE" not in swift_env(local, tmp_path)
    resumed = swift_sft_args(
        local, dataset=tmp_path, val_dataset=tmp_path, output_dir=tmp_path, resume_from_checkpoint=tmp_path
    )
    assert resumed[resumed.index("--resume_from_checkpoint") + 1] == str(tmp_path.resolve())
    assert resumed[resumed.index("--max_steps") + 1] == "6"


def _fake_checkpoint(run: Path, step: int, *, complete: bool = True) -> None:
    checkpoint = run / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (checkpoint / name).write_text("{}")
    if complete:
        (checkpoint / "optimizer.pt").write_text("state")
        (checkpoint / "trainer_state.json").write_text("{}")


def test_best_checkpoint_is_not_simply_the_latest(tmp_path):
    for step in (2, 4, 6):
        _fake_checkpoint(tmp_path, step, complete=step != 6)
    records = [
        {"loss": 3.0, "global_step/max_steps": "2/6"},
        {"eval_loss": 2.5, "global_step/max_steps": "2/6"},
        {"eval_loss": 1.5, "global_step/max_steps": "4/6"},
        {"eval_loss": 9.0, "global_step/max_steps": "6/6"},  # a run that got interrupted ...
        {"eval_loss": 2.0, "global_step/max_steps": "6/6"},  # ... and redid step 6 on resume
        {"last_model_checkpoint": "checkpoint-6", "global_step": 6},
    ]
    (tmp_path / "logging.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"torn')
    assert read_history(tmp_path) == [
        {"step": 2, "loss": 3.0, "eval_loss": 2.5},
        {"step": 4, "eval_loss": 1.5},
        {"step": 6, "eval_loss": 2.0},
    ]
    assert find_best_checkpoint(tmp_path).name == "checkpoint-4"
    # checkpoint-6 has no trainer_state.json: it was cut off while saving.
    assert latest_resumable_checkpoint(tmp_path).name == "checkpoint-4"


def test_pruning_keeps_the_resumable_checkpoint_whole_the_best_ones_weights_and_leaves_a_partial_one(tmp_path):
    for step in (25, 50, 75, 100):
        _fake_checkpoint(tmp_path, step)
    _fake_checkpoint(tmp_path, 125, complete=False)  # being written right now
    records = [{"eval_loss": loss, "global_step/max_steps": f"{step}/200"}
               for step, loss in ((25, 2.0), (50, 1.1), (75, 1.4), (100, 1.3))]  # fmt: skip
    (tmp_path / "logging.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    state = prune_checkpoints(tmp_path)
    assert state.checkpoints == ["checkpoint-50", "checkpoint-100", "checkpoint-125"]
    assert (state.resumable, state.best) == ("checkpoint-100", "checkpoint-50")
    assert (tmp_path / "checkpoint-100" / "optimizer.pt").is_file()  # a resume starts here
    assert not (tmp_path / "checkpoint-50" / "optimizer.pt").exists()  # the release's weights, nothing more
    assert (tmp_path / "checkpoint-50" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "checkpoint-125" / "adapter_model.safetensors").is_file()  # not touched while written
    assert state.optimizer_state_bytes == len("state")


def test_failed_run_raises_with_the_output_tail_and_no_secrets(tmp_path, monkeypatch):
    from motioncoach.errors import TrainingError

    # A stand-in for the `swift.cli.sft` module that prints like a crashing trainer, secret included,
    # and exits 3: found first on PYTHONPATH by the very command run_sft starts.
    fake = tmp_path / "fake-swift" / "swift" / "cli"
    fake.mkdir(parents=True)
    for package in (fake.parent, fake):
        (package / "__init__.py").write_text("")
    crash = "import os, sys; print('loading'); print('token=' + os.environ['HF_TOKEN']); sys.exit(3)"
    (fake / "sft.py").write_text(crash)
    monkeypatch.setenv("PYTHONPATH", str(fake.parent.parent))
    monkeypatch.setenv("HF_TOKEN", "hf_supersecretvalue123")
    with pytest.raises(TrainingError, match="exited with code 3") as failure:
        run_sft(
            local_train_config(tmp_path),
            dataset=tmp_path / "train.jsonl",
            val_dataset=tmp_path / "val.jsonl",
            image_root=tmp_path,
            output_dir=tmp_path / "run",
        )
    assert "loading" in str(failure.value) and "token=***" in str(failure.value)
    assert "supersecret" not in str(failure.value)


def test_training_package_imports_cheaply():
    heavy = ("torch", "transformers", "swift", "peft", "prefect", "modal", "matplotlib")
    code = f"import sys, motioncoach.training; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
