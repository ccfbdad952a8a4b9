"""A small data dir as the pipeline leaves it, built in a second without YOLO or a teacher.

Two real photos (astronaut, grace_hopper) and their mirror images, with the keypoints
yolo11n-pose detected on them (mirrored: x -> 1 - x, left <-> right), a YOLO cache holding those
detections and one rejection, labels from the rules labeler, labels.jsonl, the dataset and a split.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

from PIL import Image, ImageOps

from motioncoach.config import SplitConfig, TrainConfig
from motioncoach.dataset import build_dataset, split_dataset
from motioncoach.hashing import file_sha256
from motioncoach.labels import RulesLabeler
from motioncoach.labels.outcomes import label_samples
from motioncoach.labels.store import write_label_log
from motioncoach.pose.cache import CacheEntry, PoseCache
from motioncoach.records import KEYPOINT_NAMES, Keypoint, PoseSample
from motioncoach.training.session import TrainedAdapter

FINGERPRINT = "test-settings"
# (x, y, conf) per COCO keypoint, as yolo11n-pose detected them.
POSES = {
    "astronaut.png": (
        "standing",
        [
            (0.4314, 0.2363, 0.998), (0.4784, 0.199, 0.997), (0.3988, 0.1891, 0.995), (0.5343, 0.2351, 0.961),
            (0.3476, 0.209, 0.917), (0.6088, 0.4876, 0.995), (0.203, 0.4749, 0.998), (0.6732, 0.8063, 0.76),
            (0.1179, 0.8323, 0.851), (0.6272, 0.8879, 0.646), (0.2693, 0.9718, 0.66), (0.5042, 0.9847, 0.236),
            (0.2552, 0.9884, 0.309), (0.5276, 0.9472, 0.003), (0.329, 0.9472, 0.004), (0.4451, 1.0, 0.0),
            (0.445, 0.9991, 0.001),
        ],
    ),
    "grace_hopper.jpg": (
        "seated",
        [
            (0.5176, 0.3894, 0.997), (0.5925, 0.3173, 0.998), (0.4393, 0.3192, 0.997), (0.6923, 0.3721, 0.974),
            (0.3373, 0.3796, 0.904), (0.8854, 0.7294, 0.883), (0.1335, 0.7309, 0.963), (0.9429, 0.9852, 0.006),
            (0.083, 0.9668, 0.017), (0.7152, 0.8514, 0.011), (0.1987, 0.9173, 0.016), (0.7032, 0.9727, 0.001),
            (0.2508, 0.9751, 0.001), (0.7502, 0.7689, 0.0), (0.3199, 0.7732, 0.001), (0.5145, 0.8431, 0.001),
            (0.4864, 0.8776, 0.001),
        ],
    ),
}  # fmt: skip


def _photo(name: str) -> Image.Image:
    if name == "astronaut.png":
        from skimage import data

        return Image.fromarray(data.astronaut())
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return Image.open(f).convert("RGB")


def _mirrored(points: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    swap = {
        n: n.replace("left_", "right_") if n.startswith("left_") else n.replace("right_", "left_")
        for n in KEYPOINT_NAMES
    }
    by_name = dict(zip(KEYPOINT_NAMES, points, strict=True))
    return [(round(1 - by_name[swap[n]][0], 4), by_name[swap[n]][1], by_name[swap[n]][2]) for n in KEYPOINT_NAMES]


def build_release_data(root: Path) -> SimpleNamespace:
    """root/data with raw photos, yolo_cache.json, labels.jsonl, pose_dataset.jsonl and splits/."""
    data_dir = Path(root) / "data"
    cache = PoseCache(data_dir / "yolo_cache.json")
    samples = []
    for name, (activity, points) in POSES.items():
        photo = _photo(name)
        folder = data_dir / "raw" / "samples" / activity
        folder.mkdir(parents=True, exist_ok=True)
        stem, suffix = name.rsplit(".", 1)
        for variant, image, kps in (
            (name, photo, points),
            (f"{stem}_mirror.png", ImageOps.mirror(photo), _mirrored(points)),
        ):
            path = folder / variant
            image.save(path)
            sample = PoseSample(
                sha256=file_sha256(path),
                source_path=path,
                activity=activity,
                width=image.width,
                height=image.height,
                box_conf=0.9,
                keypoints=tuple(
                    Keypoint(name=n, x=x, y=y, conf=c) for n, (x, y, c) in zip(KEYPOINT_NAMES, kps, strict=True)
                ),
            )
            samples.append(sample)
            cache.record(
                FINGERPRINT,
                CacheEntry(
                    sha256=sample.sha256, source_path=str(path), activity=activity, outcome="kept", persons=1,
                    width=sample.width, height=sample.height, box_conf=0.9,
                    keypoints=[(k.name, k.x, k.y, k.conf) for k in sample.keypoints], weights="yolo11n-pose.pt",
                ),
            )  # fmt: skip
    empty = data_dir / "raw" / "samples" / "still life" / "coffee.png"
    empty.parent.mkdir(parents=True, exist_ok=True)
    from skimage import data as skdata

    Image.fromarray(skdata.coffee()).save(empty)
    cache.record(
        FINGERPRINT,
        CacheEntry(
            sha256=file_sha256(empty), source_path=str(empty), activity="still life", outcome="rejected",
            reason="no person", persons=0, weights="yolo11n-pose.pt",
        ),
    )  # fmt: skip
    cache.save()
    report = label_samples(samples, RulesLabeler())
    assert len(report.labeled) == len(samples), [o.reason for o in report.failed]
    write_label_log(report, data_dir)
    dataset = build_dataset(report.labeled, data_dir)
    splits = split_dataset(dataset.path, SplitConfig(val_fraction=0.5), data_dir / "splits")
    return SimpleNamespace(data_dir=data_dir, splits=splits, samples=samples)


def stand_in_training(data_dir: Path, config: TrainConfig | None = None) -> TrainedAdapter:
    """A finished training session's record over a checkpoint holding small stand-in adapter files.

    For the tests of cards and uploads, which read the record and copy the files but never load them.
    """
    run = Path(data_dir) / "runs" / "stand-in"
    checkpoint = run / "checkpoint-4"
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 256, "lora_alpha": 512}))
    import torch
    from safetensors.torch import save_file

    # LoRA tensors named as the recipe's are: two modules of the language model, one of the vision tower,
    # one of the merger and one of a deepstack merger.
    modules = [
        "model.language_model.layers.0.self_attn.q_proj", "model.language_model.layers.0.mlp.down_proj",
        "model.visual.blocks.0.attn.qkv", "model.visual.merger.linear_fc1",
        "model.visual.deepstack_merger_list.0.linear_fc2",
    ]  # fmt: skip
    weights = {
        f"base_model.model.{module}.lora_{part}.weight": torch.full((2, 2), float(index))
        for index, module in enumerate(modules)
        for part in "AB"
    }
    save_file(weights, checkpoint / "adapter_model.safetensors")
    plot = run / "loss.png"
    shutil.copyfile(next((Path(data_dir) / "images").iterdir()), plot)
    return TrainedAdapter(
        config=config or TrainConfig(),
        run_dir=run,
        checkpoint=checkpoint,
        eval_loss=0.8125,
        history=[{"step": 2, "loss": 1.5, "eval_loss": 0.9}, {"step": 4, "loss": 1.1, "eval_loss": 0.8125}],
        loss_plot=plot,
        sample_output="",
    )


def tiny_adapter(data_dir: Path, model_dir: Path) -> TrainedAdapter:
    """A LoRA adapter on the tiny Qwen3-VL in model_dir, trained one optimizer step on the training split.

    Trained with PEFT and torch directly, in-process, to keep these tests fast; the MS-Swift run
    that makes adapters in the pipeline is tested in test_training.py.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from motioncoach.config import local_train_config
    from motioncoach.dataset import read_jsonl
    from motioncoach.training import plot_losses

    data_dir = Path(data_dir)
    config = local_train_config(model_dir).model_copy(update={"lora_rank": 8, "lora_alpha": 16, "max_steps": 1})
    processor = AutoProcessor.from_pretrained(model_dir)
    base = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(
        base, LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, target_modules="all-linear")
    )
    row = read_jsonl(data_dir / "splits" / "train.jsonl")[0]
    system, user, answer = (m["content"] for m in row["messages"])
    messages = [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user.replace("<image>", "")}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer[:200]}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False)
    with Image.open(data_dir / row["images"][0]) as image:
        inputs = processor(text=[text], images=[image.convert("RGB").resize((64, 64))], return_tensors="pt")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    # The loss over the answer's last tokens only: the logits of every position (a 150k-word vocabulary
    # over thousands of tokens) would cost gigabytes for the same one step of every LoRA module.
    kept = 64
    logits = model(**inputs, logits_to_keep=kept).logits
    targets = inputs["input_ids"][:, -kept:]
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), targets[:, 1:].flatten())
    loss.backward()
    optimizer.step()
    run = data_dir / "runs" / "tiny-lora"
    checkpoint = run / "checkpoint-1"
    model.save_pretrained(checkpoint)
    history = [{"step": 1, "loss": loss.item(), "eval_loss": loss.item()}]
    return TrainedAdapter(
        config=config,
        run_dir=run,
        checkpoint=checkpoint,
        eval_loss=loss.item(),
        history=history,
        loss_plot=plot_losses(history, run / "loss.png"),
        sample_output="",
    )
