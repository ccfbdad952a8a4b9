"""The Hugging Face Hub as every step reaches it: the HF_* settings, and explicit requests made while the
local defaults keep huggingface_hub offline.

Publishing uploads a release, serving downloads one, benchmarks fetch their suites: all read the account from
here. Secrets live only in HubSettings, read from the environment at the point of use; they are never part of a
run config, a flow parameter, a result, a log line or an artifact.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


# huggingface_hub reads one process-wide offline switch: one explicit request flips it at a time.
_ONLINE = threading.Lock()


@contextmanager
def hub_reachable() -> Iterator[None]:
    """Let huggingface_hub make requests while an explicit upload or download runs, even with HF_HUB_OFFLINE=1."""
    from huggingface_hub import constants

    with _ONLINE:
        offline = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = False
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = offline
