"""A content-addressed copy of every image the dataset uses, inside the data dir.

Rows refer to images by relative path, so the same dataset trains locally and on the Modal volume,
and identical photos from different folders are one file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image, ImageOps

IMAGES_DIR = "images"
_ORIENTATION_TAG = 0x0112


def store_image(source: Path, sha256: str, data_dir: Path) -> str:
    """Copy source into data_dir/images/ once; returns its path relative to data_dir.

    A photo with an EXIF rotation is stored upright, as the pose detector saw it, so the keypoints
    and the pixels the model is trained on agree whatever loader reads it.
    """
    with Image.open(source) as image:
        rotated = image.getexif().get(_ORIENTATION_TAG, 1) != 1
        suffix = ".png" if rotated else f".{(image.format or 'png').lower().replace('jpeg', 'jpg')}"
        relative = f"{IMAGES_DIR}/{sha256}{suffix}"
        target = Path(data_dir) / relative
        if target.exists():
            return relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        if rotated:
            ImageOps.exif_transpose(image).save(partial, format="PNG")
        else:
            shutil.copyfile(source, partial)
    partial.replace(target)
    return relative
