"""Where a release goes: the Hub settings from the environment, and the upload's own knobs.

Secrets live only in HubSettings, read from the environment at the point of use; they are never
part of a run config, a flow parameter, a result, a log line or an artifact.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from motioncoach.config import StepConfig
from motioncoach.evaluation.config import GateConfig, GateRules

DEFAULT_ENDPOINT = "https://huggingface.co"


class HubSettings(BaseSettings):
    """The Hugging Face Hub account and repositories, from HF_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="HF_", extra="ignore")

    token: SecretStr | None = Field(
        None, description="HF_TOKEN: a write token from https://huggingface.co/settings/tokens."
    )
    adapter_repo_id: str | None = Field(
        None, description="HF_ADAPTER_REPO_ID: user/name of the model repo to upload to."
    )
    dataset_repo_id: str | None = Field(
        None,
        description="HF_DATASET_REPO_ID: user/name of the dataset repo for --push-dataset "
        "(default: the adapter repo's name + '-dataset').",
    )
    merged_repo_id: str | None = Field(
        None,
        description="HF_MERGED_REPO_ID: user/name of a model repo for the merged weights (opt-in; the modal "
        "profile merges every release).",
    )
    endpoint: str = Field(DEFAULT_ENDPOINT, description="HF_ENDPOINT: the Hub's URL.")

    @field_validator("token", "adapter_repo_id", "dataset_repo_id", "merged_repo_id", mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("endpoint", mode="before")
    @classmethod
    def _no_trailing_slash(cls, value):
        return (value or DEFAULT_ENDPOINT).rstrip("/")

    @property
    def dataset_repo(self) -> str | None:
        """The dataset repo: HF_DATASET_REPO_ID, else the adapter repo's name + '-dataset'."""
        if self.dataset_repo_id:
            return self.dataset_repo_id
        return f"{self.adapter_repo_id}-dataset" if self.adapter_repo_id else None


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
