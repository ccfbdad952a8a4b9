"""Training rows shaped like the production dataset: real photos at the largest image size
(MAX_PIXELS, 980 visual tokens), the project's own prompts, and a teacher-length label."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageOps

from motioncoach.dataset.prompt import system_prompt, user_prompt
from motioncoach.dataset.rows import write_jsonl
from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import KEYPOINT_NAMES, Keypoint, PoseSample

# 1120 x 896 = 1,003,520 pixels = MAX_PIXELS: 35 x 28 merged patches, the 980-token ceiling.
IMAGE_SIZE = (1120, 896)
# A standing pose (astronaut, as yolo11n-pose saw it): every keypoint named in the prompt.
_POSE = [
    (0.431, 0.236),
    (0.478, 0.199),
    (0.399, 0.189),
    (0.534, 0.235),
    (0.348, 0.209),
    (0.609, 0.488),
    (0.203, 0.475),
    (0.673, 0.806),
    (0.118, 0.832),
    (0.627, 0.888),
    (0.269, 0.972),
    (0.504, 0.885),
    (0.255, 0.888),
    (0.528, 0.947),
    (0.329, 0.947),
    (0.445, 0.990),
    (0.445, 0.999),
]
_CORRECTIONS = [
    ("left_knee", "major",
     "Push your LEFT knee out over your toes and keep your weight in your heel as you lower.", 20),
    ("right_elbow", "intermediate",
     "Tuck your RIGHT elbow closer to your ribs so the upper arm stays in line with your torso.", -25),
    ("left_hip", "minor",
     "Sink your LEFT hip a little lower and square it to the front so your pelvis stays level.", 15),
]  # fmt: skip


def photos() -> list[Image.Image]:
    """Real photos that installed packages ship (scikit-image, matplotlib)."""
    import skimage.data
    from matplotlib import cbook

    images = []
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        try:
            images.append(Image.fromarray(getattr(skimage.data, name)()).convert("RGB"))
        except Exception:  # noqa: BLE001 - a build of scikit-image that would download it; the others do
            continue
    images.append(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    return images


def write_images(folder: Path, count: int, size: tuple[int, int] = IMAGE_SIZE) -> list[str]:
    """count JPEGs of exactly `size`, cropped and mirrored from the photos; names relative to folder."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    sources = photos()
    names = []
    for i in range(count):
        image = ImageOps.fit(sources[i % len(sources)], size)
        if (i // len(sources)) % 2:
            image = ImageOps.mirror(image)
        name = f"images/photo-{i:03d}.jpg"
        image.save(folder / name, quality=90)
        names.append(name)
    return names


def label(variant: int) -> CoachingLabel:
    """A label of the length a teacher writes: three corrections, each with its two arrows."""
    points = []
    for joint, severity, script, turn in _CORRECTIONS:
        x, y = _POSE[KEYPOINT_NAMES.index(joint)]
        angle = math.radians(35 * variant % 360)
        end = (min(1, max(0, x + 0.12 * math.cos(angle))), min(1, max(0, y + 0.12 * math.sin(angle))))
        turned = angle + math.radians(turn)
        target = (min(1, max(0, x + 0.12 * math.cos(turned))), min(1, max(0, y + 0.12 * math.sin(turned))))
        points.append(
            {
                "mistake_timestamp_ms": 0,
                "severity": severity,
                "coaching_script": script,
                "visuals": {
                    "overlay_type": "ANGLE_CORRECTION",
                    "focus_point": {"x": x, "y": y},
                    "vectors": [
                        {"start": [x, y], "end": list(end), "color": "red", "label": "Current"},
                        {"start": [x, y], "end": list(target), "color": "green", "label": "Target"},
                    ],
                },
            }
        )
    return CoachingLabel(
        status="success",
        positive_note="Your stance is stable and your chest stays open; the line from your head to your hips is good.",
        progress_score=60 + variant % 20,  # the rubric's band for these three: 31 to 82
        improvement_delta=None,
        feedback_points=points,
    )


def sample(variant: int, image: str) -> PoseSample:
    keypoints = tuple(
        Keypoint(name=name, x=min(1.0, x + 0.001 * variant), y=y, conf=0.9)
        for name, (x, y) in zip(KEYPOINT_NAMES, _POSE, strict=True)
    )
    return PoseSample(
        sha256=f"{variant:064x}",
        source_path=Path(image),
        activity="warrior pose",
        width=IMAGE_SIZE[0],
        height=IMAGE_SIZE[1],
        box_conf=0.95,
        keypoints=keypoints,
    )


def write_rows(folder: Path, train: int, val: int, size: tuple[int, int] = IMAGE_SIZE) -> tuple[Path, Path]:
    """train.jsonl and val.jsonl in folder, images beside them (rows name them relative to folder)."""
    images = write_images(folder, train + val, size)
    rows = [
        {
            "messages": [
                {"role": "system", "content": system_prompt()},
                {"role": "user", "content": user_prompt(sample(i, image))},
                {"role": "assistant", "content": label(i).to_json()},
            ],
            "images": [image],
        }
        for i, image in enumerate(images)
    ]
    write_jsonl(rows[:train], folder / "train.jsonl")
    write_jsonl(rows[train:], folder / "val.jsonl")
    return folder / "train.jsonl", folder / "val.jsonl"


def text_tokens(tokenizer, row: dict) -> int:
    """Tokens of the row's conversation in the chat template, the image counted as its one pad token."""
    messages = [{"role": m["role"], "content": m["content"].replace("<image>", "")} for m in row["messages"]]
    from motioncoach.training.tiny_model import CHAT_TEMPLATE

    text = tokenizer.apply_chat_template(messages, chat_template=CHAT_TEMPLATE, tokenize=False)
    return len(tokenizer(text)["input_ids"])


def image_tokens(size: tuple[int, int], max_pixels: int) -> int:
    """Visual tokens of one image after swift's resize to at most max_pixels (32 x 32 pixels a token)."""
    w, h = size
    scale = min(1.0, math.sqrt(max_pixels / (w * h)))
    return round(w * scale / 32) * round(h * scale / 32)
