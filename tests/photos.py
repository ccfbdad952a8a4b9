"""Many distinct real photos of one person, made offline from the photos installed packages ship."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from motioncoach.sources.samples import SAMPLE_PHOTOS

SINGLE_PERSON = ("astronaut.png", "grace_hopper.jpg")


def single_person_photos(dest: Path, count: int, activities: tuple[str, ...] = ("yoga", "squat"), seed: int = 0):
    """count photos under dest/<activity>/: crops, flips and sensor noise of the one-person sample photos,
    at 1000 px, so that each is distinct and encodes as large as a busy real photo (about 250 KB at 768 px)."""
    rng = np.random.default_rng(seed)
    sources = []
    for _, name, load in SAMPLE_PHOTOS:
        if name in SINGLE_PERSON:
            photo = load()
            sources.append(Image.open(photo).convert("RGB") if isinstance(photo, Path) else Image.fromarray(photo))
    for index in range(count):
        image = sources[index % len(sources)]
        width, height = image.size
        keep = rng.uniform(0.9, 1.0)
        left, top = rng.integers(0, int(width * (1 - keep)) + 1), rng.integers(0, int(height * (1 - keep)) + 1)
        variant = image.crop((left, top, left + int(width * keep), top + int(height * keep)))
        variant = ImageOps.mirror(variant) if rng.random() < 0.5 else variant
        scale = 1000 / max(variant.size)
        variant = variant.resize(
            (round(variant.width * scale), round(variant.height * scale)), Image.Resampling.BILINEAR
        )
        pixels = np.asarray(variant, dtype=np.float32) + rng.normal(0, 10, (variant.height, variant.width, 3))
        folder = Path(dest) / activities[index % len(activities)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"photo_{index:04d}.jpg", quality=95)
    return Path(dest)
