"""A few validation photos drawn for people who would rather look than read.

Each PNG shows the photo twice, side by side: the teacher's label and the adapter's answer, each
drawn by `motioncoach.overlay.draw_overlay` (keypoints, the red Current and green Target vectors as
the app draws them, and a caption with each correction's severity and script).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from motioncoach.evaluation.report import EvalReport, RowResult
from motioncoach.evaluation.score import parse_label
from motioncoach.labels.schema import read_label
from motioncoach.overlay import draw_overlay

GALLERY_DIR = "gallery"


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
    teacher = read_label(row.teacher)
    _, answer, problem = parse_label(row.answers.get(model, ""))
    score = row.scores.get(model)
    if answer is None:
        title = f"{model}: {problem or 'no answer'}"
    elif score is not None and score.problem:
        title = f"{model} ({score.problem})"
    else:
        title = model
    panels = [
        draw_overlay(photo, teacher, row.sample, title="teacher", min_conf=min_conf),
        draw_overlay(photo, answer, row.sample, title=title, min_conf=min_conf),
    ]
    sheet = Image.new("RGB", (sum(p.width for p in panels), max(p.height for p in panels)), "white")
    x = 0
    for panel in panels:
        sheet.paste(panel, (x, 0))
        x += panel.width
    return sheet
