"""A few validation photos drawn for people who would rather look than read.

Each PNG shows the photo twice, side by side: the teacher's label and the adapter's answer, each
with the detected keypoints, the red Current and green Target vectors, and a one-line caption.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from motioncoach.evaluation.evaluate import EvalReport, RowResult
from motioncoach.evaluation.score import focus_of, parse_label
from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample

GALLERY_DIR = "gallery"
PANEL_HEIGHT = 384
CAPTION_HEIGHT = 40
# COCO-17 limbs drawn between keypoints.
SKELETON = (
    ("left_shoulder", "right_shoulder"),
    ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
    ("left_ear", "left_eye"),
    ("left_eye", "nose"),
    ("nose", "right_eye"),
    ("right_eye", "right_ear"),
)
COLORS = {"red": (230, 40, 40), "green": (40, 200, 70)}


def draw_gallery(report: EvalReport, dest_dir: Path, count: int, model: str = "adapter") -> list[Path]:
    """Draw the first `count` validation rows into dest_dir (replacing what was there); return the PNGs.

    Rows whose image is not on this machine (an evaluation that ran on Modal) are left out.
    """
    dest_dir = Path(dest_dir)
    shutil.rmtree(dest_dir, ignore_errors=True)
    dest_dir.mkdir(parents=True)
    paths = []
    for number, row in enumerate([r for r in report.rows if Path(r.image).is_file()][:count], start=1):
        path = dest_dir / f"{number:02d}-{row.sample.sha256[:12]}.png"
        draw_row(row, model, min_conf=report.config.keypoint_conf).save(path)
        paths.append(path)
    return paths


def draw_row(row: RowResult, model: str, min_conf: float = 0.3) -> Image.Image:
    """The teacher's panel beside the model's panel."""
    with Image.open(row.image) as img:
        photo = img.convert("RGB")
    teacher = CoachingLabel.model_validate_json(row.teacher)
    _, answer, problem = parse_label(row.answers.get(model, ""))
    score = row.scores.get(model)
    if answer is not None and score is not None:
        caption = f"{model}: score {answer.progress_score}, {_focus(score.focus_joint, score.side)}"
        if score.problem:
            caption += f" ({score.problem[:40]})"
    else:
        caption = f"{model}: {problem or 'no answer'}"
    panels = [
        _panel(photo, row.sample, teacher, _caption("teacher", teacher, row.sample, min_conf), min_conf),
        _panel(photo, row.sample, answer, caption, min_conf),
    ]
    sheet = Image.new("RGB", (sum(p.width for p in panels), panels[0].height), "white")
    x = 0
    for panel in panels:
        sheet.paste(panel, (x, 0))
        x += panel.width
    return sheet


def _caption(who: str, label: CoachingLabel, sample: PoseSample, min_conf: float) -> str:
    return f"{who}: score {label.progress_score}, {_focus(*focus_of(label, sample, min_conf))}"


def _focus(joint: str | None, side: str | None) -> str:
    return f"{(side or '?').upper()} side, at the {(joint or 'no joint').replace('_', ' ')}"


def _panel(photo: Image.Image, sample: PoseSample, label: CoachingLabel | None, caption: str, min_conf: float):
    scale = PANEL_HEIGHT / photo.height
    width = max(1, round(photo.width * scale))
    panel = Image.new("RGB", (max(width, 256), PANEL_HEIGHT + CAPTION_HEIGHT), "white")
    panel.paste(photo.resize((width, PANEL_HEIGHT), Image.BICUBIC), (0, CAPTION_HEIGHT))
    draw = ImageDraw.Draw(panel)

    def at(x: float, y: float) -> tuple[float, float]:
        return x * width, CAPTION_HEIGHT + y * PANEL_HEIGHT

    seen = sample.confident(min_conf)
    for a, b in SKELETON:
        if a in seen and b in seen:
            draw.line([at(seen[a].x, seen[a].y), at(seen[b].x, seen[b].y)], fill=(255, 220, 0), width=2)
    for kp in seen.values():
        x, y = at(kp.x, kp.y)
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(0, 160, 255), outline="white")
    for point in label.feedback_points if label else []:
        for vector in point.visuals.vectors:
            _arrow(draw, at(*vector.start), at(*vector.end), COLORS[vector.color])
    draw.text((6, 6), _fit(caption, panel.width), fill="black", font=_font())
    return panel


def _arrow(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], color) -> None:
    draw.line([start, end], fill=color, width=4)
    angle = math.atan2(end[1] - start[1], end[0] - start[0])
    head = [end] + [
        (end[0] - 14 * math.cos(angle + turn), end[1] - 14 * math.sin(angle + turn)) for turn in (0.45, -0.45)
    ]
    draw.polygon(head, fill=color)


def _font():
    try:
        return ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _fit(text: str, width: int) -> str:
    """Shorten the caption to roughly what fits on one line."""
    limit = max(10, width // 8)
    return text if len(text) <= limit else text[: limit - 1] + "…"
