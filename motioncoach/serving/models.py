"""Which weights `--adapter` names: a LoRA adapter (with its base model), merged weights, or a Hub repo of either."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from motioncoach.errors import ConfigurationError
from motioncoach.modal_release import MODAL_ADAPTER_FILE, read_modal_adapter
from motioncoach.serving.backends import adapter_base_model, is_adapter
from motioncoach.serving.release import read_lineage, recorded_max_pixels, recorded_pose

log = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class ModelChoice:
    """A model to load: merged weights (adapter None) or a base model with a LoRA adapter on top."""

    model: str  # a local directory, or a Hub id of the base model
    adapter: Path | None

    @property
    def label(self) -> str:
        return f"{self.model} + {self.adapter}" if self.adapter else self.model


def choose_model(adapter: str | Path, base_model: str | None = None) -> ModelChoice:
    """Resolve --adapter (a directory or a Hub id) and --base-model to what the backend loads."""
    path = Path(adapter).expanduser()
    if not path.exists() and _HUB_ID.match(str(adapter)):
        path = _download(str(adapter))
    if not path.is_dir():
        raise ConfigurationError(
            f"--adapter {adapter}: no such directory. Train one first (`motioncoach run`), or pass --adapter with "
            "a LoRA adapter directory, a merged model directory or a Hub repo id."
        )
    if is_adapter(path):
        if not (path / "adapter_model.safetensors").is_file():
            raise ConfigurationError(f"--adapter {path}: adapter_model.safetensors is missing")
        base = base_model or adapter_base_model(path)
        if Path(base).is_absolute() and not Path(base).is_dir():
            raise ConfigurationError(
                f"the adapter in {path} was trained on {base}, which is not on this machine: pass --base-model "
                "with that model's directory or Hub id"
            )
        return ModelChoice(model=base, adapter=path.resolve())
    if (path / "config.json").is_file():
        return ModelChoice(model=str(path.resolve()), adapter=None)
    remote = read_modal_adapter(path)
    if remote is not None:
        command = remote.get("command") or "modal volume get ..."
        raise ConfigurationError(
            f"--adapter {path}: the weights stayed on the Modal volume ({MODAL_ADAPTER_FILE} says where); fetch "
            f"them with `{command}`, or serve them there with `motioncoach serve --profile modal`"
        )
    raise ConfigurationError(f"--adapter {path} holds neither a LoRA adapter (adapter_config.json) nor a model")


def _download(repo_id: str) -> Path:
    """A Hub repo's files in the local Hugging Face cache (HF_TOKEN for a private repo)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    from motioncoach.hub import HubSettings, hub_reachable

    settings = HubSettings()
    token = settings.token.get_secret_value() if settings.token else None
    try:
        with hub_reachable():  # an explicit request for the Hub, whatever the offline defaults say
            return Path(snapshot_download(repo_id, token=token, endpoint=settings.endpoint))
    except RepositoryNotFoundError:
        raise ConfigurationError(
            f"--adapter {repo_id}: no such repo on {settings.endpoint}, or it is private and HF_TOKEN cannot read it"
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "no answer"
        raise ConfigurationError(f"--adapter {repo_id}: the Hub answered {status}") from None


def training_max_pixels(choice: ModelChoice) -> int:
    """MAX_PIXELS the model was trained with, as the release records it (lineage.json beside an adapter or
    carried into a merged directory, or the merge's record); the production recipe's when there is none."""
    from motioncoach.config import TrainConfig

    recorded = recorded_max_pixels([choice.adapter, Path(choice.model)])
    if recorded is None:
        recorded = TrainConfig().max_pixels
        log.warning("no record of MAX_PIXELS beside %s: photos are shown at the production recipe's %d", choice.label,
                    recorded)  # fmt: skip
    return recorded


def _lineage(choice: ModelChoice) -> dict:
    """The release's lineage.json (beside an adapter, or carried into a merged directory), or {}."""
    return read_lineage([choice.adapter, Path(choice.model)])


DEFAULT_POSE_WEIGHTS = "yolo11n-pose.pt"


def release_pose_weights(choice: ModelChoice | None) -> str:
    """The pose model the release's dataset was filtered with (its lineage says), else the shipped yolo11n."""
    pose = recorded_pose([choice.adapter, Path(choice.model)]) if choice else None
    return str(pose["weights"]) if pose else DEFAULT_POSE_WEIGHTS


@dataclass(frozen=True)
class Student:
    """The fine-tuned model and its base, as a measurement asks them (serving.served.served_models)."""

    choice: ModelChoice
    base: str
    adapter: str | None  # a LoRA adapter on base
    merged: str | None  # or the merged release
    roles: tuple[str, ...]  # which of base and adapter can be asked
    max_pixels: int


def student_and_base(adapter: str | None, base_model: str | None = None) -> Student | None:
    """--adapter (default ./lora-adapter, when it exists) and its base; None when there is no model to ask."""
    default = Path("./lora-adapter")
    if adapter is None and not default.is_dir():
        if base_model is None:
            return None
        choice = ModelChoice(model=base_model, adapter=None)
        return Student(choice, base_model, None, None, ("base",), training_max_pixels(choice))
    choice = choose_model(adapter or default, base_model)
    pixels = training_max_pixels(choice)
    if choice.adapter is not None:
        return Student(choice, choice.model, str(choice.adapter), None, ("base", "adapter"), pixels)
    recorded = (_lineage(choice).get("training") or {}).get("base_model")
    base = base_model or (recorded if recorded and not str(recorded).startswith("<") else None)
    if base is None:
        log.warning("%s is a merged model that names no base: pass --base-model to score the base too", choice.model)
        return Student(choice, choice.model, None, choice.model, ("adapter",), pixels)
    return Student(choice, base, None, choice.model, ("base", "adapter"), pixels)
