"""Near-duplicate photos: the same picture resized, re-encoded or a frame apart, found by a perceptual hash.

A 64-bit difference hash (brightness gradients of a 9x8 grey thumbnail) survives resizing and JPEG
re-encoding; two photos within a few bits of each other are one picture for the split, so a copy
never sits on the other side of its original.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_DISTANCE = 6  # bits of 64: resized and re-encoded copies differ by 0-4, different photos by 20+
_BANDS = 8  # within MAX_DISTANCE, two hashes share at least two of the eight bytes: candidates only


def dhash(path: Path) -> int | None:
    """The 64-bit difference hash of an image, upright; None when it cannot be read."""
    try:
        with Image.open(path) as image:
            grey = ImageOps.exif_transpose(image).convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    except (OSError, UnidentifiedImageError):
        return None
    pixels = grey.tobytes()  # one byte per pixel, row by row
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (pixels[row * 9 + col] < pixels[row * 9 + col + 1])
    return bits


def group_near_duplicates(images: dict[str, Iterable[Path]], max_distance: int = MAX_DISTANCE) -> dict[str, str]:
    """key -> the key that stands for its group: keys whose images hash within max_distance bits share one."""
    hashes: dict[str, int] = {}
    for key, paths in images.items():
        found = [h for h in (dhash(p) for p in paths) if h is not None]
        if found:
            hashes[key] = found[0]
    parent = {key: key for key in images}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    buckets: dict[tuple[int, int], list[str]] = defaultdict(list)
    for key, value in hashes.items():
        for band in range(_BANDS):
            buckets[(band, (value >> (8 * band)) & 0xFF)].append(key)
    for members in buckets.values():
        for i, first in enumerate(members):
            for second in members[i + 1 :]:
                if (hashes[first] ^ hashes[second]).bit_count() <= max_distance:
                    a, b = root(first), root(second)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    return {key: root(key) for key in images}
