"""A photo sent to the served model: decoded once, upright, exactly as the dataset's pose filter decodes it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from motioncoach.config import PoseFilterConfig
from motioncoach.pose.image_check import check_image

MAX_PHOTO_BYTES = 20 * 1024 * 1024  # a phone photo is a few MB; a body this large is not a photo
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[\w.-]+)*;base64,(?P<data>.*)$", re.DOTALL)


class PhotoError(ValueError):
    """The bytes are not a photo the model can look at; the message says why in one line."""


@dataclass(frozen=True)
class Photo:
    """An upright RGB photo, its content hash, and a name for logs and overlays."""

    rgb: np.ndarray  # H x W x 3, uint8, EXIF orientation applied
    sha256: str
    name: str

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    def image(self) -> Image.Image:
        return Image.fromarray(self.rgb)


def read_photo(data: bytes, name: str, max_pixels: int = PoseFilterConfig().max_pixels) -> Photo:
    """Decode a photo's bytes (JPEG, PNG, ...): upright, RGB; PhotoError with the reason otherwise."""
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoError(f"{name}: {len(data)} bytes is more than a photo ({MAX_PHOTO_BYTES} at most)")
    decoded = check_image(data, max_pixels)
    if isinstance(decoded, str):
        raise PhotoError(f"{name}: {decoded}")
    return Photo(rgb=decoded.rgb, sha256=hashlib.sha256(data).hexdigest(), name=name)


def decode_base64_image(text: str) -> bytes:
    """The bytes of an image sent as base64 or as a data: URL (PhotoError when it is neither)."""
    match = _DATA_URL.match(text.strip())
    if match:
        if match.group("type") and not match.group("type").startswith("image/"):
            raise PhotoError(f"the data: URL holds {match.group('type')}, not an image")
        text = match.group("data")
    elif text.lstrip().startswith("data:"):
        raise PhotoError("the data: URL is not base64-encoded (expected data:image/...;base64,...)")
    compact = re.sub(r"\s+", "", text)
    if not compact:
        raise PhotoError("the image is empty")
    try:
        urlsafe = "-" in compact or "_" in compact  # the URL-safe alphabet, as Gemini and others send
        padded = compact + "=" * (-len(compact) % 4)
        return base64.b64decode(padded, altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError):
        raise PhotoError("the image is neither base64 nor a data: URL") from None


# Qwen3-VL: 16-pixel patches merged 2 x 2, so one visual token per 32 x 32 pixels.
PIXELS_PER_TOKEN_SIDE = 32
MIN_TOKENS = 4  # qwen_vl_utils' IMAGE_MIN_TOKEN_NUM: the fewest visual tokens swift shows an image with


def pixel_bounds(max_pixels: int) -> tuple[int, int]:
    """The fewest and the most pixels a training image had: swift turns MAX_PIXELS into whole visual tokens
    (IMAGE_MAX_TOKEN_NUM), then qwen_vl_utils back into pixels."""
    tokens = PIXELS_PER_TOKEN_SIDE**2
    return MIN_TOKENS * tokens, max(MIN_TOKENS, max_pixels // tokens) * tokens


def processor_size(max_pixels: int) -> dict[str, int]:
    """The Qwen3-VL image processor's `size` that resizes as training did (its edges are pixel counts)."""
    fewest, most = pixel_bounds(max_pixels)
    return {"longest_edge": most, "shortest_edge": fewest}


def model_input(image: Image.Image, max_pixels: int) -> Image.Image:
    """An upright RGB image resized as MS-Swift resizes training images for Qwen3-VL: qwen_vl_utils'
    smart_resize to whole visual tokens, at most max_pixels (MAX_PIXELS), then PIL's resize."""
    from qwen_vl_utils.vision_process import smart_resize

    fewest, most = pixel_bounds(max_pixels)
    height, width = smart_resize(
        image.height, image.width, factor=PIXELS_PER_TOKEN_SIDE, min_pixels=fewest, max_pixels=most
    )
    return image.convert("RGB").resize((width, height))
