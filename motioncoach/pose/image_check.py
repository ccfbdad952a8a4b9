"""Decode one image file safely: upright RGB pixels, or a short reason why it cannot be used."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

EMPTY = "empty file"
NOT_AN_IMAGE = "not an image"
TRUNCATED = "truncated image"


@dataclass(frozen=True)
class DecodedImage:
    """An image as YOLO sees it: EXIF-rotated upright, RGB, uint8 HxWx3."""

    rgb: np.ndarray
    width: int
    height: int


def bomb_reason(width: int, height: int, max_pixels: int) -> str:
    """The rejection reason for an image claiming too many pixels."""
    return f"decompression bomb: {width}x{height} pixels exceeds max_pixels={max_pixels}"


def check_image(source: Path | bytes, max_pixels: int) -> DecodedImage | str:
    """Decode a file (path or its bytes); never raises for bad content, returns the reason instead."""
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        return f"unreadable: {exc}"
    if not data:
        return EMPTY
    try:
        return _decode(data, max_pixels)
    except UnidentifiedImageError:
        return NOT_AN_IMAGE
    except ModuleNotFoundError as exc:
        # Ultralytics patches Image.open to retry unidentified files with the optional pi-heif
        # plugin; without it, that retry fails here instead of with UnidentifiedImageError.
        if exc.name == "pi_heif":
            return NOT_AN_IMAGE
        return f"unreadable: {type(exc).__name__}: {exc}"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        size = _claimed_size(data)
        return bomb_reason(*size, max_pixels) if size else f"decompression bomb: over max_pixels={max_pixels}"
    except EOFError:
        return TRUNCATED
    except OSError as exc:
        return TRUNCATED if "truncated" in str(exc).lower() else f"unreadable: {exc}"
    except Exception as exc:  # a malformed file can make any plugin raise anything
        return f"unreadable: {type(exc).__name__}: {exc}"


def _decode(data: bytes, max_pixels: int) -> DecodedImage | str:
    with warnings.catch_warnings():
        # PIL's own bomb guard only warns below 2x its limit; here it rejects the image.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > max_pixels:
                return bomb_reason(width, height, max_pixels)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # keypoints must match the upright photo
            rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return DecodedImage(rgb=rgb, width=rgb.shape[1], height=rgb.shape[0])


def _claimed_size(data: bytes) -> tuple[int, int] | None:
    """The size a header claims, read through PIL's format registry: its bomb error hides it."""
    Image.init()
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            accepted = not accept or accept(data[:16])
            if accepted and not isinstance(accepted, str):
                return factory(io.BytesIO(data), "").size
        except Exception:  # a plugin that claims the prefix but cannot parse it: try the next one
            continue
    return None
