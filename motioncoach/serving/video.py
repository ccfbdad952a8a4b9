"""The app's upload: a short clip (or a photo) turned into upright frames the coach can choose from.

The app films a take and sends the mp4 as it is. The coach looks at one photo, so a handful of frames spread
over the clip are decoded (PyAV), turned upright as the phone's display matrix says, and the pose filter
and a sharpness measure pick one (`clip.py`).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from motioncoach.config import PoseFilterConfig
from motioncoach.serving.photo import Photo, PhotoError, read_photo

FRAMES = 12  # candidates per clip: YOLO on 12 frames is ~1 s on a CPU, a fraction of the model's answer
MAX_SECONDS = 30.0  # a take is seconds long; frames past this are not decoded
MAX_FRAME_PIXELS = PoseFilterConfig().max_pixels


class UploadError(ValueError):
    """The upload is neither a video nor a photo the coach can read; the message says why in one line."""


@dataclass(frozen=True)
class Frame:
    """One upright frame of the upload, and when it is shown in the clip (0 for a photo)."""

    photo: Photo
    time_ms: int
    kind: str = "video"  # or "photo": how the coach speaks of the upload


def read_upload(data: bytes, name: str, count: int = FRAMES) -> list[Frame]:
    """The photo itself as one frame at 0 ms (upright by its EXIF), or frames of a video; UploadError otherwise."""
    if not data:
        raise UploadError("the upload is empty")
    try:
        return [Frame(photo=read_photo(data, name), time_ms=0, kind="photo")]
    except PhotoError as exc:
        photo = str(exc).removeprefix(f"{name}: ")
    try:
        return read_frames(data, name, count)
    except UploadError as video:
        raise UploadError(f"neither a video ({video}) nor a photo ({photo})") from None


def read_frames(data: bytes, name: str, count: int = FRAMES, max_seconds: float = MAX_SECONDS) -> list[Frame]:
    """Up to `count` upright frames, spread evenly over the clip's first max_seconds."""
    import av

    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError) as exc:
        raise UploadError(f"not a video PyAV can read: {_said(exc)}") from None
    with container:
        if not container.streams.video:
            raise UploadError("the file holds no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        length = _seconds(stream, container)
        # Evenly over the clip; without a length in its headers, a frame every quarter second.
        step = min(length, max_seconds) / count if length else 0.25
        wanted = step / 2
        frames: list[Frame] = []
        digest = hashlib.sha256(data).hexdigest()[:16]
        try:
            for decoded in container.decode(stream):
                at = float(decoded.time or 0.0)
                if at > max_seconds or len(frames) >= count:
                    break
                if at + 1e-6 < wanted:
                    continue
                frames.append(_frame(decoded, name, digest, at))
                while wanted <= at + 1e-6:
                    wanted += step
        except av.FFmpegError as exc:
            if not frames:
                raise UploadError(f"the video cannot be decoded: {_said(exc)}") from None
    if not frames:
        raise UploadError("the video has no frames")
    return frames


def _frame(decoded, name: str, digest: str, at: float) -> Frame:
    if decoded.width * decoded.height > MAX_FRAME_PIXELS:
        raise UploadError(f"a frame of {decoded.width}x{decoded.height} pixels is more than a video of a take")
    rgb = decoded.to_ndarray(format="rgb24")
    turns = round((decoded.rotation or 0) / 90) % 4  # the display matrix: degrees counter-clockwise
    if turns:
        rgb = np.ascontiguousarray(np.rot90(rgb, turns))
    time_ms = round(at * 1000)
    photo = Photo(rgb=rgb, sha256=hashlib.sha256(f"{digest}@{time_ms}".encode()).hexdigest(), name=name)
    return Frame(photo=photo, time_ms=time_ms)


def _seconds(stream, container) -> float:
    """The clip's length as its headers give it; 0 when they do not."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else 0.0


def _said(exc: Exception) -> str:
    """FFmpeg's own words ("Invalid data found when processing input"), without errno and file name."""
    return getattr(exc, "strerror", None) or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
