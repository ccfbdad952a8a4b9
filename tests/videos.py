"""Real H.264 clips made offline with PyAV: a photo held for a few seconds, or a blank frame."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def clip(frames: list[Image.Image], fps: int = 10) -> bytes:
    """An mp4 showing the frames in turn, one per 1/fps seconds."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        width, height = (d - d % 2 for d in frames[0].size)  # H.264 wants even sides
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.asarray(image.convert("RGB").resize((width, height))), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def held(photo: Image.Image, seconds: float, fps: int = 10, marks: dict[int, Image.Image] | None = None) -> bytes:
    """The photo for `seconds`; marks replaces the frames at those indices (to tell which frame was cut)."""
    frames = [photo] * round(seconds * fps)
    for index, image in (marks or {}).items():
        frames[index] = image
    return clip(frames, fps)
