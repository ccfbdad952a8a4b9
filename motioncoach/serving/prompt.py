"""What the student is asked about one photo: the system and user turns its training rows hold, and the photo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from motioncoach.dataset.prompt import system_prompt, user_prompt
from motioncoach.records import PoseSample
from motioncoach.serving.photo import model_input, read_photo

IMAGE_TAG = "<image>"  # where MS-Swift puts the photo in a training row's user turn: first


@dataclass(frozen=True)
class Prompt:
    """One question for the model: greedy-answered by every backend alike."""

    key: str  # identifies the question: a validation row's image path, or a served photo's name
    system: str
    user: str  # the user turn without the image tag: the image goes first, as in training
    image: Path | Image.Image  # a stored (upright) image file, or a decoded upright photo
    max_pixels: int  # the training images' MAX_PIXELS

    def pixels(self) -> Image.Image:
        """The photo as training showed photos to the model."""
        image = self.image
        if isinstance(image, Path):
            image = read_photo(image.read_bytes(), image.name).image()
        return model_input(image, self.max_pixels)


def student_prompt(sample: PoseSample, image: Path | Image.Image, key: str, max_pixels: int) -> Prompt:
    """The prompt a training row would hold for this detection: the same system prompt and pose block."""
    return Prompt(
        key=key,
        system=system_prompt(),
        user=user_prompt(sample).replace(IMAGE_TAG, "", 1),
        image=image,
        max_pixels=max_pixels,
    )


def row_prompt(row: dict, data_dir: Path, max_pixels: int) -> Prompt:
    """The prompt of a training or validation row, as the model saw it in training."""
    turns = {m["role"]: m["content"] for m in row["messages"]}
    key = row["images"][0]
    return Prompt(
        key=key,
        system=turns.get("system", ""),
        user=turns["user"].replace(IMAGE_TAG, "", 1),
        image=Path(data_dir) / key,
        max_pixels=max_pixels,
    )
