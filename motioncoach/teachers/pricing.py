"""What a request costs, from its token counts and the configured price table."""

from __future__ import annotations

import io
import json

from PIL import Image

from motioncoach.errors import ConfigurationError
from motioncoach.teachers.base import TeacherRequest
from motioncoach.teachers.capabilities import image_tokens

# Before any answer has come back: the prompts (coaching instructions, pose block, schema) are about
# 1,000 tokens, an image what its model bills for it, and an answer with its thinking about 700.
TYPICAL_PROMPT_TOKENS = 1000
TYPICAL_IMAGE_SIDES = (768, 576)  # a 4:3 photo downscaled to the 768 px of a request
TYPICAL_OUTPUT_TOKENS = 700
# Text tokens from characters, on the safe side: prose is about 4 characters a token, the pose
# block's numbers and the schema's JSON fewer.
CHARS_PER_TOKEN = 3
BATCH_DISCOUNT = 0.5
PRICE_SETTING = "--price MODEL=IN,OUT (labeling.prices in the Prefect form)"


def typical_input_tokens(model_id: str) -> int:
    """Input tokens of a typical request to this model: a 768 px photo and the prompts."""
    return image_tokens(model_id, *TYPICAL_IMAGE_SIDES) + TYPICAL_PROMPT_TOKENS


def estimate_input_tokens(model_id: str, request: TeacherRequest) -> int:
    """Input tokens this request will be billed for: its image at the model's media resolution, its texts."""
    with Image.open(io.BytesIO(request.image_jpeg)) as image:
        width, height = image.size  # the header only: nothing is decoded
    characters = len(request.system) + len(request.prompt) + len(json.dumps(request.response_schema))
    return image_tokens(model_id, width, height) + -(-characters // CHARS_PER_TOKEN)


def is_priced(model_id: str, prices: dict[str, tuple[float, float]]) -> bool:
    """Free models (':free') and those in the table; any other model's cost is unknown."""
    return model_id.endswith(":free") or model_id in prices or model_id.split("/")[-1] in prices


def price_per_token(model_id: str, prices: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """USD per input and output token; free and unpriced models count as 0 (check is_priced to tell them apart)."""
    if model_id.endswith(":free"):
        return 0.0, 0.0
    per_million = prices.get(model_id) or prices.get(model_id.split("/")[-1])
    if per_million is None:
        return 0.0, 0.0
    return per_million[0] / 1e6, per_million[1] / 1e6


def cost_usd(
    model_id: str, input_tokens: int, output_tokens: int, prices: dict[str, tuple[float, float]], batch: bool = False
) -> float:
    per_in, per_out = price_per_token(model_id, prices)
    return (input_tokens * per_in + output_tokens * per_out) * (BATCH_DISCOUNT if batch else 1.0)


def check_prices(models: dict[str, str], prices: dict[str, tuple[float, float]], max_cost: float | None) -> None:
    """Refuse a spending cap that could never fire: max_cost with a paid model missing from the price table.

    models: teacher name -> model id.
    """
    if max_cost is None:
        return
    unpriced = [f"{teacher} model {model!r}" for teacher, model in models.items() if not is_priced(model, prices)]
    if unpriced:
        example = next(m for m in models.values() if not is_priced(m, prices))
        raise ConfigurationError(
            f"--max-cost {max_cost:g} cannot be enforced: the price of the {' and the '.join(unpriced)} is unknown. "
            f"Add it with {PRICE_SETTING}, in USD per million input and output tokens "
            f"(e.g. --price {example}=0.10,0.40), or drop --max-cost."
        )


def parse_price(text: str) -> tuple[str, tuple[float, float]]:
    """'vendor/model=0.10,0.40' -> ('vendor/model', (0.10, 0.40))."""
    model, _, numbers = text.rpartition("=")
    parts = numbers.split(",")
    try:
        if not model.strip() or len(parts) != 2:
            raise ValueError
        per_in, per_out = (float(p) for p in parts)
        if per_in < 0 or per_out < 0:
            raise ValueError
    except ValueError:
        raise ConfigurationError(
            f"--price {text!r} is not MODEL=IN,OUT (USD per million input and output tokens, e.g. "
            "--price openai/gpt-4o-mini=0.15,0.60)."
        ) from None
    return model.strip(), (per_in, per_out)
