"""The coach as a Modal endpoint: what a container serves, read from the volume when it starts.

`motioncoach serve --profile modal` writes /data/serving.json (the release to serve: merged weights on
the volume, or a Hub repo of merged weights); each container of the endpoint starts vLLM on it, puts
the same HTTP app as `motioncoach serve --openai-upstream` in front (the app's route, POST /v1/coach,
GET /health) and exposes vLLM's OpenAI-compatible API under /v1 for clients that bring their own prompt.
vLLM's output goes to a log file per start (log_dir, on the volume), whose last lines any failed start
says; its compile caches live in cache_dir (a volume of their own), so a cold start reuses them. A
rehearsal, without a GPU, serves the same weights through transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from motioncoach.errors import ConfigurationError
from motioncoach.serving.vllm import MAX_MODEL_LEN

VOLUME_PATH = "/data"


class ServingConfig(BaseModel):
    """/data/serving.json: what the endpoint serves."""

    model: str = Field(description="Merged weights: a directory on the volume (/data/...) or a Hub repo id.")
    max_pixels: int = Field(gt=0, description="The training images' MAX_PIXELS: photos are shown at this size.")
    pose_weights: str = Field("yolo26x-pose.pt", description="The pose weights the dataset was filtered with.")
    max_new_tokens: int = Field(1024, gt=0, description="Tokens each answer may use.")
    max_model_len: int = Field(MAX_MODEL_LEN, gt=0, description="vLLM's context: prompt, photo and answer.")

    @property
    def release(self) -> str:
        """What /health reports as served: the client waits until it names the release it chose."""
        return self.model


@dataclass
class Endpoint:
    app: Any
    server: Any = None  # the VLLMServer, when vLLM serves

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def read_serving_config(serving_file: Path) -> ServingConfig:
    try:
        return ServingConfig.model_validate_json(Path(serving_file).read_text())
    except FileNotFoundError:
        raise ConfigurationError(
            f"{serving_file} is missing: choose the release to serve with `motioncoach serve --profile modal "
            "--adapter <adapter dir of a modal-profile release, or a Hub repo of merged weights>`"
        ) from None


def start_endpoint(
    serving_file: Path,
    data_root: Path,
    rehearsal: bool = False,
    *,
    log_dir: Path | None = None,
    cache_dir: Path | None = None,
    token: str | None = None,
) -> Endpoint:
    """Read what to serve, start the model (vLLM on a GPU; transformers in a rehearsal) and build the app.

    log_dir: where each start's vLLM log is kept (the volume); cache_dir: vLLM's and torch.compile's caches;
    token: the API token (default MOTIONCOACH_SERVE_TOKEN, which the endpoint's secret provides).
    """
    from motioncoach.config import PoseFilterConfig
    from motioncoach.serving.coach import Coach
    from motioncoach.serving.http import REQUEST_DEADLINE_S, create_app
    from motioncoach.serving.settings import ServeSettings

    config = read_serving_config(serving_file)
    token = token or ServeSettings().secret("token")
    model = _located(config.model, Path(data_root))
    pose = PoseFilterConfig(weights=config.pose_weights)
    if rehearsal:
        from motioncoach.serving.backends import TransformersBackend

        backend = TransformersBackend(model, max_new_tokens=config.max_new_tokens, name="transformers (rehearsal)")
        coach = Coach(backend, config.max_pixels, pose)
        return Endpoint(app=create_app(coach, release=config.release, max_batch=4, token=token))
    from motioncoach.serving.backends import OpenAIChatBackend
    from motioncoach.serving.vllm import VLLM_VERSION, VLLMServer, log_for_start

    server = VLLMServer(
        model, max_model_len=config.max_model_len, max_pixels=config.max_pixels,
        log_path=log_for_start(log_dir) if log_dir else None, cache_dir=cache_dir,
    ).__enter__()  # fmt: skip
    try:
        backend = OpenAIChatBackend(
            server.base_url, server.served_model, max_tokens=config.max_new_tokens, name=f"vLLM {VLLM_VERSION}",
            timeout_s=REQUEST_DEADLINE_S - 30, max_retries=0,  # vLLM is local: a retry would only wait longer
        )  # fmt: skip
        coach = Coach(backend, config.max_pixels, pose)
        # vLLM batches what is in flight: several coach batches at once keep it busy.
        app = create_app(coach, release=config.release, max_batch=16, workers=4, token=token, upstream=server.root_url)
    except BaseException:
        server.stop()
        raise
    return Endpoint(app=app, server=server)


def _located(model: str, data_root: Path) -> str:
    """A volume path as this container sees it, or a Hub repo's files copied onto the volume once."""
    if model.startswith(f"{VOLUME_PATH}/"):
        path = data_root / model.removeprefix(f"{VOLUME_PATH}/")
        if not (path / "config.json").is_file():
            raise ConfigurationError(f"{model} on the volume holds no model (no config.json): merge the release first")
        return str(path)
    from motioncoach.training.base_model import ensure_local_model

    return str(ensure_local_model(model, data_root / "models"))
