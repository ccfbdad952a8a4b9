"""The records that flow between steps: an image found by a source, and a kept pose."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

# COCO-17 keypoint order, as Ultralytics pose models emit it.
KEYPOINT_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)


class ImageRecord(BaseModel):
    """One input file found by a source."""

    model_config = ConfigDict(frozen=True)

    path: Path = Field(description="Absolute path of the file.")
    activity: str = Field(description="Activity, from the enclosing folder's name.")
    sha256: str = Field(description="Hex sha256 of the file's bytes.")


class Keypoint(BaseModel):
    """A detected keypoint, normalized to the image: x, y in [0, 1], origin top-left."""

    model_config = ConfigDict(frozen=True)

    name: str
    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    conf: float = Field(ge=0, le=1)


class PoseSample(BaseModel):
    """An image kept by the pose filter: exactly one person, enough confident keypoints."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    source_path: Path
    activity: str
    width: int = Field(gt=0, description="Width in pixels of the image as decoded (EXIF-rotated).")
    height: int = Field(gt=0, description="Height in pixels of the image as decoded (EXIF-rotated).")
    box_conf: float = Field(ge=0, le=1)
    keypoints: tuple[Keypoint, ...] = Field(description="All 17 COCO keypoints, in KEYPOINT_NAMES order.")

    def confident(self, min_conf: float = 0.3) -> dict[str, Keypoint]:
        """Keypoints above min_conf, by name."""
        return {k.name: k for k in self.keypoints if k.conf > min_conf}
