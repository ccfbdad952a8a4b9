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


@dataclass(frozen=True)
class RowTurns:
    """A dataset row (training, validation, pose_dataset.jsonl) as MS-Swift reads it."""

    key: str  # the row's image path, relative to the data dir: unique per row
    system: str
    user: str  # the user turn without the image tag
    assistant: str | None  # the teacher's label, as the model is trained to answer


def row_turns(row: dict) -> RowTurns:
    """The one reading of a dataset row, shared by the evaluation, the audit and the serving checks; KeyError,
    IndexError or TypeError when the row is not one."""
    turns = {m["role"]: m["content"] for m in row["messages"]}
    return RowTurns(
        key=row["images"][0],
        system=turns.get("system", ""),
        user=turns["user"].replace(IMAGE_TAG, "", 1),
        assistant=turns.get("assistant"),
    )


def row_prompt(row: dict, data_dir: Path, max_pixels: int) -> Prompt:
    """The prompt of a training or validation row, as the model saw it in training."""
    turns = row_turns(row)
    return Prompt(
        key=turns.key, system=turns.system, user=turns.user, image=Path(data_dir) / turns.key, max_pixels=max_pixels
    )
