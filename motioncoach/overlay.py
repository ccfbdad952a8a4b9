"""One label drawn over its photo, as the app shows it."""

from __future__ import annotations

from PIL import Image

from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample


def draw_overlay(
    photo: Image.Image, label: CoachingLabel | None, sample: PoseSample, *, title: str = "", min_conf: float = 0.3
) -> Image.Image:
    from motioncoach.evaluation.gallery import _panel

    return _panel(photo.convert("RGB"), sample, label, title, min_conf)
