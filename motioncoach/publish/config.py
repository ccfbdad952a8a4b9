"""Where a release goes: the upload's own knobs and the release gate's (the Hub account is
motioncoach.hub.HubSettings)."""

from __future__ import annotations

from pydantic import Field, field_validator

from motioncoach.config import StepConfig
from motioncoach.evaluation.config import GateConfig, GateRules


class HubConfig(StepConfig):
    """How uploads are made."""

    private: bool = Field(True, description="Create new repositories private (an existing repo keeps its visibility).")
    license: str = Field(
        "apache-2.0", description="License in the model card: the base model's (Qwen3-VL: Apache-2.0)."
    )
    retry_delays_s: tuple[float, ...] = Field(
        (5.0, 30.0, 120.0), description="Waits before each retry of a transient failure (5xx, 429, connection)."
    )
    commit_message: str = Field("Upload MotionCoach LoRA adapter", min_length=1, description="Commit message.")

    @field_validator("retry_delays_s")
    @classmethod
    def _non_negative(cls, delays: tuple[float, ...]) -> tuple[float, ...]:
        if any(d < 0 for d in delays):
            raise ValueError("retry delays must be >= 0 seconds")
        return delays


class PeopleRules(StepConfig):
    """What people's judgements hold a release to."""

    min_audit_pass_rate: float = Field(
        0.8,
        ge=0,
        le=1,
        description="On Modal, training starts only when people approved at least this share of the audited "
        "labels (an audit with no verdict holds nothing back).",
    )
    benchmark: str | None = Field(
        None,
        description="A human-labelled benchmark (a suite folder, or 'exact') the student must do no worse than its "
        "base on to be uploaded (mcq_accuracy, error_recall, error_precision); it runs after the evaluation.",
    )


class ReleaseSettings(PeopleRules):
    """The release form of finetune and motioncoach-pipeline: the gate's rules, what people's judgements hold it
    to, and how uploads are made. Whether the gate is on and whether the dataset is pushed are their own parameters."""

    gate: GateRules = Field(default_factory=GateRules, description="What the adapter must beat the base model on.")
    hub: HubConfig = Field(default_factory=HubConfig, description="How uploads are made.")


class ReleaseConfig(PeopleRules):
    """What happens after training: the gate, the Hub upload, and the optional dataset push."""

    gate: GateConfig = Field(default_factory=GateConfig, description="The adapter must beat the base model to ship.")
    hub: HubConfig = Field(default_factory=HubConfig, description="How uploads are made.")
    push_dataset: bool = Field(False, description="Also upload the dataset (splits, images, card) to a dataset repo.")


def with_release_flags(
    release: ReleaseSettings | ReleaseConfig | None, gate: bool, push_dataset: bool
) -> ReleaseConfig:
    """The release settings with the gate and dataset push chosen by the top-level flags or parameters."""
    base = (release or ReleaseSettings()).model_dump()
    flags = {"gate": {**base["gate"], "enabled": gate}, "push_dataset": push_dataset}
    return ReleaseConfig.model_validate({**base, **flags})
