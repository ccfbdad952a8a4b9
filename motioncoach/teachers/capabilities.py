"""What a Gemini model family takes and bills: how thinking is configured, what an image costs in tokens.

Gemini 3 models take a thinking level; the 2.5 models answer 400 ("Thinking level is not supported
for this model") to one and take a thinking budget in tokens instead; older models take neither.
Gemini 3 bills an image at its default media resolution (high) as about 1,120 tokens, whatever its
size; earlier models bill 258 tokens per 768 x 768 tile (an image within 384 px on both sides is
one tile).
"""

from __future__ import annotations

import math
from typing import Literal

ThinkingKind = Literal["level", "budget"]

GEMINI3_IMAGE_TOKENS = 1120
TILE_TOKENS = 258
TILE_SIDE = 768
SMALL_IMAGE_SIDE = 384


def gemini_model_name(model_id: str) -> str:
    """The model id without the "models/" prefix the REST paths add themselves."""
    return model_id.removeprefix("models/")


def _generation(model_id: str) -> tuple[int, ...]:
    """(3,), (2, 5), ... from "gemini-3-flash-preview", "gemini-2.5-flash"; () for other names."""
    name = gemini_model_name(model_id)
    if not name.startswith("gemini-"):
        return ()
    version = name.removeprefix("gemini-").split("-", 1)[0]
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return ()


def thinking_kind(model_id: str) -> ThinkingKind | None:
    """How the model's thinking is configured: a level (Gemini 3 and later), a budget (2.5), or not at all."""
    generation = _generation(model_id)
    if generation >= (3,):
        return "level"
    if generation[:2] == (2, 5):
        return "budget"
    return None


def thinking_params(model_id: str, level: str | None, budget: int | None) -> dict:
    """The thinking settings this model takes, as they enter the label key: one of the two, or none."""
    kind = thinking_kind(model_id)
    if kind == "level" and level:
        return {"thinking_level": level}
    if kind == "budget" and budget is not None:
        return {"thinking_budget": budget}
    return {}


def image_tokens(model_id: str, width: int, height: int) -> int:
    """Input tokens the model bills for one image of this size at its default media resolution."""
    if _generation(model_id) >= (3,):
        return GEMINI3_IMAGE_TOKENS
    if width <= SMALL_IMAGE_SIDE and height <= SMALL_IMAGE_SIDE:
        return TILE_TOKENS
    # Larger images are cut into tiles of a crop unit of two thirds of the shorter side, each scaled to 768.
    unit = max(1, math.floor(min(width, height) / 1.5))
    return TILE_TOKENS * math.ceil(width / unit) * math.ceil(height / unit)
