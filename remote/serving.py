"""The coach endpoint on Modal, from the client's side: choose the release it serves, find its URL, wake it.

The endpoint (remote/app.py `CoachEndpoint`) is part of the deployed app and scales to zero;
each container reads /data/serving.json when it starts. Requests go through Modal's proxy auth: they
carry the headers Modal-Key and Modal-Secret of a proxy auth token of the workspace (created in the
Modal dashboard, Settings > Proxy Auth Tokens), given here as MOTIONCOACH_PROXY_KEY and
MOTIONCOACH_PROXY_SECRET.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from motioncoach.errors import ConfigurationError
from motioncoach.modal_release import MODAL_ADAPTER_FILE
from motioncoach.serving.endpoint import ServingConfig
from remote.client import Remote, modal_errors
from remote.contract import SERVING_FILE

PROXY_KEY, PROXY_SECRET = "MOTIONCOACH_PROXY_KEY", "MOTIONCOACH_PROXY_SECRET"
ENDPOINT_CLASS, ENDPOINT_METHOD = "CoachEndpoint", "web"
COLD_START_LIMIT_S = 30 * 60


def serving_config(adapter: str, max_pixels: int | None = None, pose_weights: str = "yolo26x-pose.pt") -> ServingConfig:
    """What to serve for --adapter: the merged release a modal-profile run left on the volume (its adapter dir
    names it), or a Hub repo id of merged weights."""
    folder = Path(adapter).expanduser()
    if folder.is_dir():
        try:
            record = json.loads((folder / MODAL_ADAPTER_FILE).read_text())
        except FileNotFoundError:
            raise ConfigurationError(
                f"--adapter {adapter} was not released by the modal profile (no {MODAL_ADAPTER_FILE}): serve it here "
                "with `motioncoach serve`, or upload merged weights to the Hub and pass the repo id"
            ) from None
        merged = (record.get("merged") or {}).get("path")
        if not merged:
            raise ConfigurationError(
                f"the release in {adapter} has no merged weights yet: `motioncoach merge --profile modal --adapter "
                f"{adapter}` folds them on the volume"
            )
        return ServingConfig(model=f"/data/{merged}", max_pixels=max_pixels or _lineage_pixels(folder),
                             pose_weights=pose_weights)  # fmt: skip
    from motioncoach.config import TrainConfig

    return ServingConfig(model=adapter, max_pixels=max_pixels or TrainConfig().max_pixels, pose_weights=pose_weights)


def _lineage_pixels(folder: Path) -> int:
    from motioncoach.config import TrainConfig

    try:
        return int(json.loads((folder / "lineage.json").read_text())["training"]["config"]["max_pixels"])
    except (OSError, ValueError, KeyError):
        return TrainConfig().max_pixels


def choose_release(remote: Remote, config: ServingConfig) -> None:
    """Write /data/serving.json: containers started from now on serve this release."""
    remote.write(SERVING_FILE, config.model_dump_json(indent=2).encode())


def endpoint_url(remote: Remote) -> str:
    """The deployed endpoint's URL (`modal deploy -m remote.app` creates it)."""
    import modal

    with modal_errors():
        endpoint = modal.Cls.from_name(remote.settings.app_name, ENDPOINT_CLASS)()
        return getattr(endpoint, ENDPOINT_METHOD).get_web_url()


def proxy_headers() -> dict[str, str]:
    """Modal's proxy auth headers, from MOTIONCOACH_PROXY_KEY and MOTIONCOACH_PROXY_SECRET."""
    key, secret = os.environ.get(PROXY_KEY), os.environ.get(PROXY_SECRET)
    if not (key and secret):
        raise ConfigurationError(
            f"The endpoint requires Modal's proxy auth: create a proxy auth token in the Modal dashboard "
            f"(Settings > Proxy Auth Tokens) and export {PROXY_KEY}=<token id> {PROXY_SECRET}=<token secret>"
        )
    return {"Modal-Key": key, "Modal-Secret": secret}


def wake(url: str, headers: dict[str, str], limit_s: float = COLD_START_LIMIT_S) -> float:
    """Seconds until GET /health answered 200: the cold start (a container, vLLM and the weights)."""
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        try:
            if httpx.get(f"{url}/health", headers=headers, timeout=60).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(5)
    raise ConfigurationError(f"{url}/health did not answer within {limit_s:.0f} s: see the app's logs on Modal")
