"""Which frame of a take the coach looks at: one the pose filter keeps (exactly one person, enough of the
body, as for a dataset photo), and of those the sharpest over the person, since motion blur hides the
joints the coach must see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from motioncoach.records import PoseSample
from motioncoach.serving.photo import Photo

BOX_MARGIN = 0.15  # around the confident keypoints' box: the limbs' outline is part of the person
MIN_BOX_PX = 16


def sharpness(photo: Photo, sample: PoseSample, min_conf: float = 0.3) -> float:
    """Variance of the Laplacian over the person (their confident keypoints' box, with a margin)."""
    import cv2  # ships with ultralytics

    points = [(k.x * photo.width, k.y * photo.height) for k in sample.confident(min_conf).values()]
    if not points:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    pad_x = max(MIN_BOX_PX, (max(xs) - min(xs)) * BOX_MARGIN)
    pad_y = max(MIN_BOX_PX, (max(ys) - min(ys)) * BOX_MARGIN)
    left, right = int(max(0, min(xs) - pad_x)), int(min(photo.width, max(xs) + pad_x)) + 1
    top, bottom = int(max(0, min(ys) - pad_y)), int(min(photo.height, max(ys) + pad_y)) + 1
    gray = cv2.cvtColor(np.ascontiguousarray(photo.rgb[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def best_frame(photos: Sequence[Photo], found: Sequence[PoseSample | str]) -> int | str:
    """The index of the frame to coach, or, when the filter kept none, its most frequent reason."""
    pairs = enumerate(zip(photos, found, strict=True))
    scores = {index: sharpness(photo, pose) for index, (photo, pose) in pairs if not isinstance(pose, str)}
    if scores:
        return max(scores, key=scores.__getitem__)  # the earliest of equally sharp frames
    return Counter(found).most_common(1)[0][0]
