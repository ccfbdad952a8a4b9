"""The coach endpoint on Modal, from the client's side: choose the release it serves and find its URL.

The endpoint (remote/app.py `CoachEndpoint`) is part of the deployed app and scales to zero; each
container reads /data/serving.json when it starts, and goes once another release is chosen. Every route
but /health needs the endpoint's token (MOTIONCOACH_SERVE_TOKEN, from the secret motioncoach-serve-secret).
"""

from __future__ import annotations

from pathlib import Path

from motioncoach.config import TrainConfig
from motioncoach.errors import ConfigurationError
from motioncoach.modal_release import MODAL_ADAPTER_FILE, read_modal_adapter
from motioncoach.serving.endpoint import ServingConfig
from motioncoach.serving.release import recorded_max_pixels
from remote.client import Remote, modal_errors
from remote.contract import SERVING_FILE, VOLUME_PATH

ENDPOINT_CLASS, ENDPOINT_METHOD = "CoachEndpoint", "web"
COLD_START_LIMIT_S = 30 * 60


def serving_config(adapter: str, max_pixels: int | None = None, pose_weights: str = "yolo26x-pose.pt") -> ServingConfig:
    """What to serve for --adapter: the merged release a modal-profile run left on the volume (its adapter dir
    names it), at the pixels it was trained at, or a Hub repo id of merged weights."""
    folder = Path(adapter).expanduser()
    if not folder.is_dir():  # a Hub repo of merged weights
        pixels = max_pixels or TrainConfig().max_pixels
        return ServingConfig(model=adapter, max_pixels=pixels, pose_weights=pose_weights)
    record = read_modal_adapter(folder)
    if record is None:
        raise ConfigurationError(
            f"--adapter {adapter} was not released by the modal profile (no {MODAL_ADAPTER_FILE}): serve it here "
            "with `motioncoach serve`, or upload merged weights to the Hub and pass the repo id"
        )
    merged = (record.get("merged") or {}).get("path")
    if not merged:
        raise ConfigurationError(
            f"the release in {adapter} has no merged weights yet: `motioncoach merge --profile modal --adapter "
            f"{adapter}` folds them on the volume"
        )
    pixels = max_pixels or recorded_max_pixels([folder]) or TrainConfig().max_pixels
    return ServingConfig(model=f"{VOLUME_PATH}/{merged}", max_pixels=pixels, pose_weights=pose_weights)


def choose_release(remote: Remote, config: ServingConfig) -> None:
    """Write /data/serving.json: containers started from now on serve this release, and the ones serving
    another go (they read it every minute)."""
    remote.write(SERVING_FILE, config.model_dump_json(indent=2).encode())


def endpoint_url(remote: Remote) -> str:
    """The deployed endpoint's URL (`modal deploy -m remote.app` creates it)."""
    import modal

    with modal_errors():
        endpoint = modal.Cls.from_name(remote.settings.app_name, ENDPOINT_CLASS)()
        return getattr(endpoint, ENDPOINT_METHOD).get_web_url()
