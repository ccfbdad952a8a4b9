"""How the adapter is measured, and what it must beat before it ships."""

from __future__ import annotations

from pydantic import Field, field_validator

from motioncoach.config import StepConfig, TrainConfig

# Metrics where higher is better; the gate may compare any of them.
GATE_METRICS = (
    "json_valid_rate",
    "schema_valid_rate",
    "grounded_rate",
    "focus_joint_agreement",
    "side_agreement",
    "agreement",
    "severity_agreement",
)


class EvalConfig(StepConfig):
    """Greedy generation on the validation split, scored against the teacher's labels."""

    max_new_tokens: int = Field(1024, gt=0, description="Tokens each answer may use (a full label is ~600).")
    batch_size: int = Field(
        8,
        gt=0,
        description="Prompts asked at once (one generate() call, or requests in flight to vLLM); the "
        "answers are kept after each such chunk, so an evaluation cut short continues.",
    )
    max_rows: int | None = Field(None, gt=0, description="Validation rows to evaluate; None for all of them.")
    max_pixels: int = Field(1003520, gt=0, description="Images are shrunk to at most this many pixels, as in training.")
    keypoint_conf: float = Field(0.3, ge=0, le=1, description="Keypoints above this confidence count for grounding.")
    gallery_images: int = Field(4, ge=0, description="Validation images drawn with teacher and adapter vectors.")


def local_eval_config(train: TrainConfig) -> EvalConfig:
    """The CPU evaluation of the tiny model: short answers (it is random), its training image size."""
    return EvalConfig(max_new_tokens=32, batch_size=4, max_pixels=train.max_pixels)


class GateRules(StepConfig):
    """What the adapter must beat the base model on; whether the gate is on is the flows' `gate` parameter."""

    metrics: tuple[str, ...] = Field(
        ("schema_valid_rate", "agreement"),
        description=f"Metrics the adapter must beat the base model on; any of {', '.join(GATE_METRICS)}.",
    )
    min_margin: float = Field(0.0, ge=0, le=1, description="The adapter must lead by more than this on each metric.")
    min_rows: int = Field(
        20, ge=1, description="Validation rows the gate needs before it can tell the adapter from the base model."
    )

    @field_validator("metrics")
    @classmethod
    def _known(cls, metrics: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in metrics if m not in GATE_METRICS]
        if unknown or not metrics:
            raise ValueError(f"gate metrics must be some of {', '.join(GATE_METRICS)}; got {', '.join(unknown)}")
        return metrics


class GateConfig(GateRules):
    """The release gate: the adapter ships only when it beats the base model."""

    enabled: bool = Field(True, description="Check the gate before uploading; off uploads whatever was trained.")
