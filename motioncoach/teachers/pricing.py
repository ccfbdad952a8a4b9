"""What a request costs, from its token counts and the configured price table."""

from __future__ import annotations

# Typical tokens of one request (a 768 px image and the prompt) and its answer; used to estimate
# before any answer has come back.
TYPICAL_INPUT_TOKENS = 1600
TYPICAL_OUTPUT_TOKENS = 700
BATCH_DISCOUNT = 0.5


def price_per_token(model_id: str, prices: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """USD per input and output token; free models cost nothing, unknown ones are priced as listed."""
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


def is_priced(model_id: str, prices: dict[str, tuple[float, float]]) -> bool:
    return model_id.endswith(":free") or model_id in prices or model_id.split("/")[-1] in prices
