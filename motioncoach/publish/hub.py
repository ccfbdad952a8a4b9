"""Uploads to the Hugging Face Hub: retried when the failure is transient, explained when it is not.

The local defaults set HF_HUB_OFFLINE=1 so that model loading never waits on the Hub; an upload is
an explicit request to reach it (HF_ADAPTER_REPO_ID or --push-dataset), so the HTTP calls made
here go out regardless, to HF_ENDPOINT (default https://huggingface.co).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from motioncoach.errors import ConfigurationError, MotionCoachError
from motioncoach.evaluation.gate import GateDecision
from motioncoach.hub import HubSettings, hub_reachable
from motioncoach.publish.config import HubConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
TOKEN_HELP = "create a write token at https://huggingface.co/settings/tokens and export HF_TOKEN=<token>"
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
IGNORE_PATTERNS = [".*", "**/.*", "*.partial"]
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class HubError(MotionCoachError):
    """An upload was refused or kept failing. Seen by the CLI user; the local files are untouched."""


class HubStatus(BaseModel):
    """Where an upload stands: pending, uploaded, skipped (with why) or failed (with why)."""

    status: Literal["pending", "uploaded", "skipped", "failed"]
    repo_id: str | None = None
    repo_type: Literal["model", "dataset"] = "model"
    url: str | None = Field(None, description="The commit's URL, once uploaded.")
    commit: str | None = None
    reason: str = ""
    files: list[str] = Field(default_factory=list, description="Paths committed, relative to the repo root.")

    @property
    def repo_url(self) -> str | None:
        if not self.repo_id:
            return None
        prefix = "datasets/" if self.repo_type == "dataset" else ""
        return f"https://huggingface.co/{prefix}{self.repo_id}"


def check_hub_settings(settings: HubSettings, push_dataset: bool = False, token_required: bool = True) -> None:
    """Raise ConfigurationError, naming the variable, when an upload is asked for but cannot be made."""
    wanted = [("HF_ADAPTER_REPO_ID", settings.adapter_repo_id)]
    if push_dataset:
        if not settings.dataset_repo:
            raise ConfigurationError(
                "--push-dataset needs a dataset repo: export HF_DATASET_REPO_ID=<user>/<name> "
                "(or HF_ADAPTER_REPO_ID, whose name + '-dataset' is used)."
            )
        wanted.append(("HF_DATASET_REPO_ID", settings.dataset_repo))
    for variable, repo_id in wanted:
        if repo_id is None:
            continue
        if not _REPO_ID.match(repo_id):
            raise ConfigurationError(f"{variable}={repo_id!r} is not of the form <user or org>/<name>.")
        if settings.token is None and token_required:
            raise ConfigurationError(
                f"{variable} is set but HF_TOKEN is not: {TOKEN_HELP}, or unset {variable} to keep the files local."
            )


def plan_adapter_upload(settings: HubSettings, decision: GateDecision, adapter_dir: Path) -> HubStatus:
    """Pending when a repo is configured and the gate passed; otherwise skipped, saying why."""
    if not settings.adapter_repo_id:
        return HubStatus(
            status="skipped",
            reason=f"HF_ADAPTER_REPO_ID is not set: the adapter stays in its folder ({Path(adapter_dir).name}). "
            "Export HF_TOKEN and HF_ADAPTER_REPO_ID=<user>/<name> to upload it.",
        )
    if not decision.passed:
        return HubStatus(status="skipped", repo_id=settings.adapter_repo_id, reason=f"release gate: {decision.reason}")
    return HubStatus(status="pending", repo_id=settings.adapter_repo_id, reason=f"release gate: {decision.reason}")


def whoami(settings: HubSettings, config: HubConfig, sleep: Callable[[float], None] = time.sleep) -> str:
    """The account HF_TOKEN belongs to; HubError naming HF_TOKEN when the Hub rejects it."""
    return str(_token_info(settings, config, sleep).get("name", "?"))


def check_write_access(
    settings: HubSettings, config: HubConfig, repo_id: str, sleep: Callable[[float], None] = time.sleep
) -> None:
    """HubError before any work when HF_TOKEN cannot write repo_id: a read-only token, or a fine-grained one
    without write permission on the repo or its namespace (it would fail only at the final upload)."""
    info = _token_info(settings, config, sleep)
    token = (info.get("auth") or {}).get("accessToken") or {}
    role = token.get("role")
    namespace = repo_id.split("/", 1)[0]
    if role == "read":
        raise HubError(f"HF_TOKEN is a read-only token: it cannot upload to {repo_id}; {TOKEN_HELP}.")
    if role == "fineGrained":
        scoped = (token.get("fineGrained") or {}).get("scoped") or []
        allowed = any(
            "repo.write" in (entry.get("permissions") or [])
            and (entry.get("entity") or {}).get("name") in (namespace, repo_id)
            for entry in scoped
        )
        if not allowed:
            raise HubError(
                f"HF_TOKEN is a fine-grained token without write access to {repo_id}: give it 'Write access to "
                f"contents/settings of all repos' under {namespace}, or {TOKEN_HELP}."
            )


def _token_info(settings: HubSettings, config: HubConfig, sleep: Callable[[float], None]) -> dict:
    api = _api(settings)
    return _with_retries(lambda: api.whoami(), "checking HF_TOKEN", settings, config, sleep)


def upload_folder(
    folder: Path,
    repo_id: str,
    settings: HubSettings,
    config: HubConfig,
    *,
    repo_type: Literal["model", "dataset"] = "model",
    commit_message: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> HubStatus:
    """Create the repo if needed (private by default) and commit every file of folder to it."""
    folder = Path(folder)
    if settings.token is None:
        raise ConfigurationError(f"HF_TOKEN is not set: {TOKEN_HELP}.")
    api = _api(settings)
    what = f"uploading {folder} to {settings.endpoint}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"

    def attempt():
        api.create_repo(repo_id, repo_type=repo_type, private=config.private, exist_ok=True)
        return api.upload_folder(
            folder_path=folder,
            repo_id=repo_id,
            repo_type=repo_type,
            commit_message=commit_message or config.commit_message,
            ignore_patterns=IGNORE_PATTERNS,
        )

    info = _with_retries(attempt, what, settings, config, sleep)
    files = sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    log.info("uploaded %d files to %s (%s)", len(files), repo_id, info.commit_url)
    return HubStatus(
        status="uploaded",
        repo_id=repo_id,
        repo_type=repo_type,
        url=info.commit_url,
        commit=info.oid,
        reason=f"{len(files)} files committed",
        files=files,
    )


def upload_adapter_folder(adapter_dir: Path, repo_id: str, settings: HubSettings, config: HubConfig) -> HubStatus:
    """upload_folder for an adapter: refuses a folder without the adapter's weights and config."""
    from motioncoach.training.checkpoints import ADAPTER_FILES

    missing = [name for name in ADAPTER_FILES if not (Path(adapter_dir) / name).is_file()]
    if missing:
        raise HubError(f"{adapter_dir} lacks {', '.join(missing)}: nothing was uploaded to {repo_id}.")
    return upload_folder(adapter_dir, repo_id, settings, config)


def upload_merged_folder(folder: Path, repo_id: str, settings: HubSettings, config: HubConfig) -> HubStatus:
    """upload_folder for merged weights: refuses a folder that is no complete merge."""
    from motioncoach.serving.merge import MERGE_RECORD

    missing = [name for name in ("config.json", MERGE_RECORD) if not (Path(folder) / name).is_file()]
    if missing or not any(Path(folder).glob("*.safetensors")):
        raise HubError(f"{folder} is not a complete merged model ({', '.join(missing) or 'no weights'}): "
                       f"nothing was uploaded to {repo_id}.")  # fmt: skip
    return upload_folder(folder, repo_id, settings, config, commit_message="Upload MotionCoach merged model")


def _api(settings: HubSettings):
    from huggingface_hub import HfApi

    token = settings.token.get_secret_value() if settings.token else None
    return HfApi(endpoint=settings.endpoint, token=token, library_name="motioncoach")


def _with_retries(
    action: Callable[[], T], what: str, settings: HubSettings, config: HubConfig, sleep: Callable[[float], None]
) -> T:
    """Run action; retry transient failures after each of config.retry_delays_s; raise HubError otherwise."""
    delays = list(config.retry_delays_s)
    for attempt in range(1, len(delays) + 2):
        try:
            with hub_reachable():
                return action()
        except Exception as exc:  # classified below: every failure becomes a retry or a HubError
            transient, description = _describe(exc, settings)
            if not transient:
                raise HubError(f"{what} failed: {description}") from None
            if attempt > len(delays):
                raise HubError(
                    f"{what} failed {attempt} times, last with {description}. Nothing local was changed; "
                    "run the same command again to retry the upload (finished steps are cached)."
                ) from None
            log.warning(
                "%s: %s; retry %d of %d in %.0f s", what, description, attempt, len(delays), delays[attempt - 1]
            )
            sleep(delays[attempt - 1])
    raise AssertionError("unreachable")


def _describe(exc: Exception, settings: HubSettings) -> tuple[bool, str]:
    """(transient?, what went wrong and what to do), with the token never in the text."""
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        code = exc.response.status_code
        said = _redact(exc.server_message or str(exc).splitlines()[0], settings)
        if code in (401, 403):
            return False, (
                f"HTTP {code} ({said}): HF_TOKEN was rejected or may not write to this repository; "
                f"{TOKEN_HELP} (with write access to the namespace)"
            )
        if code == 404:
            return False, f"HTTP 404 ({said}): check HF_ADAPTER_REPO_ID / HF_DATASET_REPO_ID and HF_ENDPOINT"
        return code in TRANSIENT_STATUS, f"HTTP {code} ({said})"
    if isinstance(exc, httpx.TransportError):
        return True, f"{type(exc).__name__} reaching {settings.endpoint} ({_redact(str(exc), settings)})"
    return False, f"{type(exc).__name__}: {_redact(str(exc), settings)}"


def _redact(text: str, settings: HubSettings) -> str:
    token = settings.token.get_secret_value() if settings.token else ""
    return text.replace(token, "***") if token else text
