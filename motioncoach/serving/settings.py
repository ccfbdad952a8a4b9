"""The server's secrets, from MOTIONCOACH_SERVE_* environment variables (on Modal, from a secret).

They are read at the point of use and never logged, answered or written anywhere.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOKEN_VARIABLE = "MOTIONCOACH_SERVE_TOKEN"


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTIONCOACH_SERVE_", extra="ignore")

    token: SecretStr | None = Field(
        None, description=f"{TOKEN_VARIABLE}: the bearer token every route but /health needs (unset: open)."
    )
    upstream_key: SecretStr | None = Field(
        None, description="MOTIONCOACH_SERVE_UPSTREAM_KEY: the OpenAI-compatible upstream's API key, if any."
    )

    @field_validator("token", "upstream_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else None
