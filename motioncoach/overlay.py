"""One label drawn over its photo, as the app shows it, with a caption a person can check it by.

The drawing follows the app's SVGOverlay.tsx for a point's visuals: each vector a 4 px line in its
own color ("red" Current, "green" Target) with its label beside its end, and, for the pair, a white
dot at the pivot and a white arc from Current to Target. The detected keypoints and skeleton are
drawn under it, as the app's backend draws them. Below the photo: the title, the verdict (score,
"no correction: the form is good", or the abstention and its reason) and one line per correction
with its number, severity and script.
"""

from __future__ import annotations

import math
import textwrap

from PIL import Image, ImageDraw, ImageFont

from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample

OVERLAY_HEIGHT = 480  # the photo's height in the drawing, so captions read the same on every photo
MIN_WIDTH = 320
MARGIN = 8
LINE_HEIGHT = 18
# COCO-17 limbs drawn between keypoints.
SKELETON = (
    ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("left_ear", "left_eye"), ("left_eye", "nose"), ("nose", "right_eye"), ("right_eye", "right_ear"),
)  # fmt: skip
SKELETON_COLOR = (255, 220, 0)
KEYPOINT_COLOR = (0, 160, 255)
ARC_COLOR = (255, 255, 255)


def draw_overlay(
    photo: Image.Image, label: CoachingLabel | None, sample: PoseSample, *, title: str = "", min_conf: float = 0.3
) -> Image.Image:
    """The photo with the sample's keypoints and the label's vectors, captioned; a new RGB image.

    label None draws the keypoints only (a model that gave no usable answer; say why in title).
    """
    scale = OVERLAY_HEIGHT / photo.height
    width, height = max(1, round(photo.width * scale)), OVERLAY_HEIGHT
    font = _font()
    lines = caption_lines(label, title)
    canvas_width = max(width, MIN_WIDTH)
    wrapped = [w for line in lines for w in _wrap(line, canvas_width - 2 * MARGIN, font)]
    canvas = Image.new("RGB", (canvas_width, height + 2 * MARGIN + LINE_HEIGHT * len(wrapped)), "white")
    canvas.paste(photo.convert("RGB").resize((width, height), Image.Resampling.BICUBIC), (0, 0))
    draw = ImageDraw.Draw(canvas)

    def at(x: float, y: float) -> tuple[float, float]:
        return min(1.0, max(0.0, x)) * width, min(1.0, max(0.0, y)) * height

    seen = sample.confident(min_conf)
    for a, b in SKELETON:
        if a in seen and b in seen:
            draw.line([at(seen[a].x, seen[a].y), at(seen[b].x, seen[b].y)], fill=SKELETON_COLOR, width=2)
    for kp in seen.values():
        x, y = at(kp.x, kp.y)
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=KEYPOINT_COLOR, outline="white")
    for number, point in enumerate(label.feedback_points if label else [], start=1):
        current, target = point.visuals.vectors
        for vector in (current, target):
            start, end = at(*vector.start), at(*vector.end)
            draw.line([start, end], fill=vector.color, width=4)
            for tip in (start, end):  # round caps, as strokeLinecap="round"
                draw.ellipse([tip[0] - 2, tip[1] - 2, tip[0] + 2, tip[1] + 2], fill=vector.color)
            draw.text((end[0] + 6, end[1] - 6 - 14), vector.label, fill=vector.color, font=font)
        _pivot_arc(draw, at(*current.start), at(*current.end), at(*target.end), min(width, height))
        pivot = at(*current.start)
        draw.text((pivot[0] + 8, pivot[1] + 4), str(number), fill="white", font=font, stroke_width=2,
                  stroke_fill="black")  # fmt: skip
    y = height + MARGIN
    for line in wrapped:
        draw.text((MARGIN, y), line, fill="black", font=font)
        y += LINE_HEIGHT
    return canvas


def caption_lines(label: CoachingLabel | None, title: str = "") -> list[str]:
    """What the caption says: the title, the verdict, then '1. major: <script>' per correction."""
    lines = [title] if title else []
    if label is None:
        return lines or ["no label"]
    if label.abstained:
        return [*lines, f"abstains: {label.error_message}"]
    if not label.feedback_points:
        return [*lines, f"no correction: the form is good (score {label.progress_score})", label.positive_note]
    lines.append(f"score {label.progress_score}: {label.positive_note}")
    for number, point in enumerate(label.feedback_points, start=1):
        lines.append(f"{number}. {point.severity}: {point.coaching_script}")
        if point.positive_note:
            lines.append(f"   good: {point.positive_note}")
    return lines


def _pivot_arc(draw: ImageDraw.ImageDraw, pivot, current_end, target_end, short_side: float) -> None:
    """The app's fallback for an untagged pair: a white dot at the pivot, a white arc the short way round."""
    x, y = pivot
    draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=ARC_COLOR)
    a1 = math.degrees(math.atan2(current_end[1] - y, current_end[0] - x))
    a2 = math.degrees(math.atan2(target_end[1] - y, target_end[0] - x))
    turn = (a2 - a1 + 180) % 360 - 180
    start, end = (a1, a1 + turn) if turn >= 0 else (a1 + turn, a1)
    r = max(18.0, short_side * 0.08)
    draw.arc([x - r, y - r, x + r, y + r], start=start, end=end, fill=ARC_COLOR, width=3)


def _wrap(line: str, width_px: float, font) -> list[str]:
    """The line broken into pieces that fit width_px."""
    if not line:
        return []
    average = max(1.0, font.getlength("abcdefghij klmnopqrstuvwxyz") / 27)
    return textwrap.wrap(line, max(10, int(width_px / average)), subsequent_indent="   ") or [""]


def _font():
    try:
        return ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()
