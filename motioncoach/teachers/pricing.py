"""What a request costs: one estimator before an answer, the billed counts after.

The estimate reads a request's real size: its image at the model's media resolution (from the image's
size alone, so an estimate needs no encoding) and its texts (the coaching instructions, the user turn,
the answer schema) at CHARS_PER_TOKEN; an answer, with its thinking, at TYPICAL_OUTPUT_TOKENS unless the
store has seen this model's answers. It is what --estimate prints, what the budget checks reserve, and
what the README's figures say. After an answer, the cost is what the provider reports (OpenRouter's
usage.cost), or its token counts at the price table's rates, cached prompt tokens at the cached rate.
"""

from __future__ import annotations

import io
import json

from PIL import Image

from motioncoach.errors import ConfigurationError
from motioncoach.teachers.base import TeacherAnswer, TeacherRequest
from motioncoach.teachers.capabilities import image_tokens

TYPICAL_OUTPUT_TOKENS = 700  # an answer with its thinking, before the store has seen this model's
# Text tokens from characters, on the safe side of what Gemini's tokenizer counts for this mix of prose,
# keypoint numbers and the schema's JSON.
CHARS_PER_TOKEN = 3.5
BATCH_DISCOUNT = 0.5
PRICE_SETTING = "--price MODEL=IN,OUT[,CACHED] (labeling.prices in the Prefect form)"


def input_tokens(model_id: str, width: int, height: int, *texts: str) -> int:
    """The estimator: an image of this size as the model bills it, and these texts."""
    return image_tokens(model_id, width, height) + int(-(-sum(len(t) for t in texts) // CHARS_PER_TOKEN))


def estimate_input_tokens(model_id: str, request: TeacherRequest) -> int:
    """Input tokens a built request will be billed for (its image's size read from the JPEG's header)."""
    with Image.open(io.BytesIO(request.image_jpeg)) as image:
        width, height = image.size  # the header only: nothing is decoded
    return input_tokens(model_id, width, height, request.system, request.prompt, json.dumps(request.response_schema))


def is_priced(model_id: str, prices: dict[str, tuple[float, ...]]) -> bool:
    """Free models (':free') and those in the table; any other model's cost is unknown."""
    return model_id.endswith(":free") or model_id in prices or model_id.split("/")[-1] in prices


def price_per_token(model_id: str, prices: dict[str, tuple[float, ...]]) -> tuple[float, float, float]:
    """USD per input, output and cached input token; free and unpriced models count as 0 (is_priced tells them
    apart). A price without a cached rate bills cached tokens as input."""
    if model_id.endswith(":free"):
        return 0.0, 0.0, 0.0
    per_million = prices.get(model_id) or prices.get(model_id.split("/")[-1])
    if per_million is None:
        return 0.0, 0.0, 0.0
    cached = per_million[2] if len(per_million) > 2 else per_million[0]
    return per_million[0] / 1e6, per_million[1] / 1e6, cached / 1e6


def cost_usd(
    model_id: str,
    input_tokens: int,
    output_tokens: int,
    prices: dict[str, tuple[float, ...]],
    batch: bool = False,
    cached_tokens: int = 0,
) -> float:
    """input_tokens include cached_tokens (as Gemini's promptTokenCount does): those are billed at the cached rate."""
    per_in, per_out, per_cached = price_per_token(model_id, prices)
    cached = min(cached_tokens, input_tokens)
    cost = (input_tokens - cached) * per_in + cached * per_cached + output_tokens * per_out
    return cost * (BATCH_DISCOUNT if batch else 1.0)


def answer_cost(model_id: str, answer: TeacherAnswer, prices: dict[str, tuple[float, ...]], batch: bool = False):
    """What an answer cost: the provider's own figure when it gives one, else its tokens at the table's rates."""
    if answer.cost_usd is not None:
        return answer.cost_usd
    return cost_usd(model_id, answer.input_tokens, answer.output_tokens, prices, batch, answer.cached_tokens)


def estimate_request_cost(
    model_id: str,
    request: TeacherRequest,
    prices: dict[str, tuple[float, ...]],
    batch: bool = False,
    output_tokens: int = TYPICAL_OUTPUT_TOKENS,
) -> float:
    """A built request's cost before its answer (no cached tokens counted: a cache hit is a bonus)."""
    return cost_usd(model_id, estimate_input_tokens(model_id, request), output_tokens, prices, batch)


def check_prices(models: dict[str, str], prices: dict[str, tuple[float, ...]], max_cost: float | None) -> None:
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
            f"Add it with {PRICE_SETTING}, in USD per million input, output (and cached input) tokens "
            f"(e.g. --price {example}=0.10,0.40), or drop --max-cost."
        )


def parse_price(text: str) -> tuple[str, tuple[float, ...]]:
    """'vendor/model=0.10,0.40' -> ('vendor/model', (0.10, 0.40)); a third number is the cached input rate."""
    model, _, numbers = text.rpartition("=")
    parts = numbers.split(",")
    try:
        if not model.strip() or len(parts) not in (2, 3):
            raise ValueError
        values = tuple(float(p) for p in parts)
        if any(v < 0 for v in values):
            raise ValueError
    except ValueError:
        raise ConfigurationError(
            f"--price {text!r} is not MODEL=IN,OUT[,CACHED] (USD per million input, output and cached input "
            "tokens, e.g. --price openai/gpt-4o-mini=0.15,0.60)."
        ) from None
    return model.strip(), values
