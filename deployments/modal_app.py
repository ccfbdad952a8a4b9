"""The Modal app: the modal profile's heavy steps, as thin functions over the domain code.

    uv run modal deploy deployments/modal_app.py

Each function unpacks its config, calls the same motioncoach function the local profile's task
calls, on the data dir /data/<name> of the volume, and commits the volume. Arguments and results
are JSON-able (pydantic models dumped to dicts), so the client and the containers never share
pickled classes. Heavy imports (torch, ultralytics, swift) live inside the function bodies: this
module imports anywhere, without GPU libraries and without Modal credentials.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import modal

from motioncoach.config import MODAL_POSE_WEIGHTS, MODAL_SECRETS, ModalConfig
from motioncoach.errors import ConfigurationError, MissingDatasetError

SETTINGS = ModalConfig()

# ---- Images: versions pinned to uv.lock (tests/test_modal.py holds them to it) ----

PYTHON_VERSION = "3.11"
CORE_PACKAGES = (  # what motioncoach itself imports, in every image
    "pydantic==2.14.4",
    "numpy==2.4.6",
    "pillow==13.0.0",
    "packaging==26.4",
    "matplotlib==3.11.2",
)
CPU_PACKAGES = (
    "scikit-image==0.26.0",
    "kaggle==2.2.5",
    "google-genai==3.6.1",
    "openai==3.57.0",
    "huggingface-hub==1.33.0",
    "hf-xet==1.8.0",
)
# The PyPI wheels carry their CUDA 13 runtime, cuDNN and NCCL: no CUDA base image is needed.
TORCH_PACKAGES = ("torch==2.14.1", "torchvision==0.29.1")
POSE_PACKAGES = ("ultralytics==8.4.190", "opencv-python==5.0.0.93")
TRAIN_PACKAGES = (
    "ms-swift==4.6.0",
    "transformers==5.19.0",
    "peft==0.20.0",
    "accelerate==1.15.0",
    "datasets==4.8.4",
    "qwen-vl-utils==0.0.14",
    "av==18.1.0",
    "huggingface-hub==1.33.0",
    "hf-xet==1.8.0",
)
# The domain package, prompt templates included (the default would keep only .py files).
SOURCE_IGNORE = ["**/__pycache__/**", "**/*.pyc"]

# Where motioncoach.pose.weights.resolve_weights() looks for a downloaded asset ($HOME is /root).
POSE_WEIGHTS_PATH = f"/root/.cache/motioncoach/weights/{MODAL_POSE_WEIGHTS}"
POSE_WEIGHTS_URL = f"https://github.com/ultralytics/assets/releases/download/v8.4.0/{MODAL_POSE_WEIGHTS}"

cpu_image = (
    modal.Image.debian_slim(python_version=PYTHON_VERSION)
    .uv_pip_install(*CORE_PACKAGES, *CPU_PACKAGES)
    .add_local_python_source("motioncoach", ignore=SOURCE_IGNORE)
)
pose_image = (
    modal.Image.debian_slim(python_version=PYTHON_VERSION)
    .apt_install("curl", "libgl1", "libglib2.0-0")
    .uv_pip_install(*CORE_PACKAGES, *TORCH_PACKAGES, *POSE_PACKAGES)
    # Baked in: every shard container starts with the same weights, without a download.
    .run_commands(f"mkdir -p {Path(POSE_WEIGHTS_PATH).parent} && curl -fsSL -o {POSE_WEIGHTS_PATH} {POSE_WEIGHTS_URL}")
    .env({"YOLO_AUTOINSTALL": "False", "YOLO_CONFIG_DIR": "/root/.config/ultralytics"})
    .add_local_python_source("motioncoach", ignore=SOURCE_IGNORE)
)
train_image = (
    modal.Image.debian_slim(python_version=PYTHON_VERSION)
    .uv_pip_install(*CORE_PACKAGES, *TORCH_PACKAGES, *TRAIN_PACKAGES)
    .env({"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    .add_local_python_source("motioncoach", ignore=SOURCE_IGNORE)
)

# ---- Volume and secrets ----

volume = modal.Volume.from_name(SETTINGS.volume_name, create_if_missing=True)
VOLUMES = {SETTINGS.volume_path: volume}
kaggle_secret = modal.Secret.from_name("kaggle-secret")  # KAGGLE_API_TOKEN, or KAGGLE_USERNAME + KAGGLE_KEY
teacher_secret = modal.Secret.from_name("gemini-api-key", required_keys=["GEMINI_API_KEY"])
hf_secret = modal.Secret.from_name("huggingface-secret", required_keys=["HF_TOKEN"])

# ---- Constants ----

MINUTES = 60
HOURS = 60 * MINUTES
POSE_GPU = "L4"  # one per shard: yolo26x-pose needs a few GB
EVAL_GPU = "H200"  # one card holds the 32B model in bf16 for batched greedy generation
TRAIN_GPU = "H200:8"  # 32B bf16 weights replicated per GPU (DDP), plus LoRA, optimizer and activations
POSE_MAX_CONTAINERS = int(os.environ.get("MOTIONCOACH_POSE_MAX_CONTAINERS", "8"))  # read at deploy time
RETRIES = modal.Retries(max_retries=2, initial_delay=10.0, backoff_coefficient=3.0)
# A retried (e.g. preempted) training run resumes from its latest checkpoint on the volume.
TRAIN_RETRIES = modal.Retries(max_retries=3, initial_delay=30.0, backoff_coefficient=1.0)
CHECKPOINT_POLL_SECONDS = 30.0
MODELS_DIR = "models"
ADAPTERS_DIR = "adapters"

app = modal.App(SETTINGS.app_name)


# ---- Functions ----


@app.function(image=cpu_image, volumes=VOLUMES, secrets=[kaggle_secret], timeout=1 * HOURS, retries=RETRIES)
def download_images(source: dict, name: str) -> list[dict]:
    """Download or assemble the source in the data dir on the volume, and list its images."""
    from motioncoach.config import SourceConfig
    from motioncoach.sources import collect_images, source_kind
    from motioncoach.sources.kaggle import kaggle_credentials_present

    _reload()
    data_dir = data_dir_for(name)
    config = SourceConfig.model_validate(source)
    kind = source_kind(config.source)
    if kind == "kaggle" and not kaggle_credentials_present():
        raise missing_secret("kaggle-secret", "KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY")
    if kind == "folder":  # the client uploaded it into the data dir
        config = config.model_copy(update={"source": str(_inside(data_dir, config.source))})
    records = collect_images(config, data_dir)
    _commit()
    return [record.model_dump(mode="json") for record in records]


@app.function(
    image=pose_image,
    gpu=POSE_GPU,
    volumes=VOLUMES,
    timeout=30 * MINUTES,
    retries=RETRIES,
    max_containers=POSE_MAX_CONTAINERS,
    cpu=4.0,
)
def filter_pose_shard(records: list[dict], config: dict, name: str) -> dict:
    """Run the pose filter on one shard with a cache of its own; the report and that cache's path."""
    from motioncoach.config import PoseFilterConfig
    from motioncoach.pose import CACHE_FILE_NAME, filter_poses
    from motioncoach.pose.shards import seed_shard_cache, shard_cache_path
    from motioncoach.records import ImageRecord

    _reload()
    data_dir = data_dir_for(name)
    shard = [ImageRecord.model_validate(record) for record in records]
    pose_config = PoseFilterConfig.model_validate(config)
    cache = shard_cache_path(data_dir, shard, pose_config)
    seed_shard_cache(data_dir / CACHE_FILE_NAME, cache, shard)
    report = filter_poses(shard, pose_config, cache)
    _commit()
    return {"report": report.model_dump(mode="json"), "cache": _relative(cache)}


@app.function(image=cpu_image, volumes=VOLUMES, timeout=10 * MINUTES, retries=RETRIES)
def merge_pose_shards(caches: list[str], name: str) -> str:
    """Fold the shards' caches into the data dir's yolo_cache.json; its path on the volume."""
    from motioncoach.pose import CACHE_FILE_NAME
    from motioncoach.pose.shards import merge_pose_caches

    _reload()
    target = data_dir_for(name) / CACHE_FILE_NAME
    shards = [_inside(data_root(), cache) for cache in caches]
    merge_pose_caches(target, shards)
    for shard in shards:
        shard.unlink(missing_ok=True)
    _commit()
    return _relative(target)


@app.function(image=cpu_image, volumes=VOLUMES, secrets=[teacher_secret], timeout=4 * HOURS, retries=RETRIES, cpu=2.0)
def label_poses(samples: list[dict], config: dict, name: str) -> dict:
    """Label the kept poses; the teacher's concurrency runs inside this container, the label store on the volume."""
    from motioncoach.config import LabelConfig
    from motioncoach.labels.outcomes import label_samples
    from motioncoach.labels.rules import RulesLabeler
    from motioncoach.labels.store import write_label_log
    from motioncoach.records import PoseSample
    from motioncoach.teachers.keys import required_keys
    from motioncoach.teachers.labeling import label_with_teachers
    from motioncoach.teachers.store_copy import store_on_local_disk

    _reload()
    data_dir = data_dir_for(name)
    label_config = LabelConfig.model_validate(config)
    poses = [PoseSample.model_validate(sample) for sample in samples]
    if label_config.labeler == "rules":
        report = label_samples(poses, RulesLabeler())
    else:
        missing = [key for key in required_keys(label_config.labeler) if not os.environ.get(key, "").strip()]
        if missing:
            raise missing_secret("gemini-api-key", " and ".join(missing))
        with tempfile.TemporaryDirectory() as scratch, store_on_local_disk(data_dir, scratch, _commit) as store_dir:
            report = label_with_teachers(poses, label_config, store_dir)
    write_label_log(report, data_dir)
    _commit()
    return report.model_dump(mode="json")


@app.function(image=cpu_image, volumes=VOLUMES, timeout=30 * MINUTES, retries=RETRIES)
def write_dataset(labeled: list[dict], split: dict, name: str) -> dict:
    """Write pose_dataset.jsonl and the 90/10 split in the data dir; each file's path, sha256 and rows."""
    from motioncoach.config import SplitConfig
    from motioncoach.dataset import SPLITS_DIR, build_dataset, split_dataset
    from motioncoach.labels.outcomes import LabelOutcome

    _reload()
    data_dir = data_dir_for(name)
    dataset = build_dataset([LabelOutcome.model_validate(outcome) for outcome in labeled], data_dir)
    summary = split_dataset(dataset.path, SplitConfig.model_validate(split), data_dir / SPLITS_DIR)
    _commit()
    files = {"dataset": dataset, "train": summary.train, "val": summary.val}
    return {key: {"path": _relative(f.path), "sha256": f.sha256, "rows": f.rows} for key, f in files.items()}


@app.function(image=cpu_image, volumes=VOLUMES, secrets=[hf_secret], timeout=2 * HOURS, retries=RETRIES)
def download_base_model(repo_id: str) -> str:
    """Copy a Hugging Face model onto the volume once (swift trains from a local directory); its path.

    A directory already on the volume (base_model="/data/models/...") is used as it is.
    """
    from motioncoach.training.base_model import ensure_local_model

    _reload()
    path = ensure_local_model(repo_id, data_root() / MODELS_DIR)
    _commit()
    return str(path)


@app.function(
    image=train_image,
    gpu=TRAIN_GPU,
    volumes=VOLUMES,
    timeout=6 * HOURS,
    retries=TRAIN_RETRIES,
    cpu=32.0,
    memory=256 * 1024,
)
def train(config: dict, name: str, expected_sha256: dict[str, str]) -> dict:
    """`swift sft` under 8 processes on the split in the data dir, resuming from its latest checkpoint."""
    from motioncoach.config import TrainConfig
    from motioncoach.dataset import load_split
    from motioncoach.training.plot import plot_losses
    from motioncoach.training.session import run_dir_for
    from motioncoach.training.sft import run_sft

    _reload()
    data_dir = data_dir_for(name)
    train_config = TrainConfig.model_validate(config)
    split = load_split(data_dir)
    found = {"train": split.train.sha256, "val": split.val.sha256}
    if found != expected_sha256:
        raise MissingDatasetError(
            f"The split on the volume ({_relative(data_dir)}/splits) is not the one in your local data dir: "
            f"run `motioncoach dataset --profile modal --data-dir <dir named {name!r}>` again."
        )
    run_dir = run_dir_for(split, train_config, data_dir)
    with _commit_on_new_checkpoints(run_dir):
        result = run_sft(
            train_config,
            dataset=split.train.path,
            val_dataset=split.val.path,
            image_root=data_dir,
            output_dir=run_dir,
        )
    plot = plot_losses(result.history, run_dir / "loss.png")
    _commit()
    return {
        "run_dir": _relative(result.output_dir),
        "checkpoint": _relative(result.best_checkpoint),
        "eval_loss": result.best_eval_loss,
        "history": result.history,
        "loss_plot": _relative(plot),
    }


@app.function(image=train_image, gpu=EVAL_GPU, volumes=VOLUMES, timeout=1 * HOURS, retries=RETRIES)
def evaluate_adapter(request: dict, name: str) -> dict:
    """Base model, adapter and rules scored on the validation split; eval.json and gallery on the volume."""
    from motioncoach.evaluation import run_evaluation

    _reload()
    located = {key: str(_on_volume(request[key])) for key in ("adapter_dir", "out_dir")}
    base = request["base_model"]  # a directory on the volume, or a model id
    if Path(base).is_absolute() or (data_root() / base).exists():
        base = str(_on_volume(base))
    result = run_evaluation({**request, **located, "base_model": base, "data_dir": str(data_dir_for(name))})
    _commit()
    return result


@app.function(image=cpu_image, volumes=VOLUMES, secrets=[hf_secret], timeout=30 * MINUTES, retries=RETRIES)
def package_adapter(run_dir: str, name: str, folder: str) -> dict:
    """Copy the best checkpoint by eval_loss (not the latest) to adapters/<run>/<folder>; its path and size."""
    from motioncoach.training.checkpoints import adapter_size_bytes, copy_adapter, find_best_checkpoint

    _reload()
    run = _inside(data_root(), run_dir)
    best = find_best_checkpoint(run)
    dest = _inside(data_dir_for(name) / ADAPTERS_DIR / run.name, folder)
    copy_adapter(best, dest)
    if (run / "loss.png").is_file():
        shutil.copyfile(run / "loss.png", dest / "loss.png")
    _commit()
    return {"path": _relative(dest), "bytes": adapter_size_bytes(dest), "checkpoint": _relative(best)}


# ---- Helpers ----


def data_root() -> Path:
    """The volume's mount point. MOTIONCOACH_VOLUME_ROOT points it elsewhere (tests run bodies locally)."""
    return Path(os.environ.get("MOTIONCOACH_VOLUME_ROOT", SETTINGS.volume_path))


def data_dir_for(name: str) -> Path:
    """The data dir on the volume: /data/<name of the local data dir>."""
    return _inside(data_root(), name)


def missing_secret(secret: str, keys: str) -> ConfigurationError:
    """The error for a Modal secret that lacks what a step needs, with the command that fixes it."""
    return ConfigurationError(
        f"The Modal secret {secret!r} does not provide {keys}: create it with `{MODAL_SECRETS[secret]}` "
        "(add --force to replace an existing one); deployed functions read it at their next start."
    )


def _inside(root: Path, relative: str) -> Path:
    """root/relative, refusing anything that would leave root."""
    path = (root / relative).resolve()
    if path != root.resolve() and root.resolve() not in path.parents:
        raise ConfigurationError(f"{relative!r} is not a path inside {root}")
    return path


def _on_volume(path: str) -> Path:
    """A path as the client names it (under the mount point, or relative to it) inside data_root()."""
    mount = Path(SETTINGS.volume_path)
    if Path(path).is_absolute():
        path = Path(path).relative_to(mount).as_posix() if Path(path).is_relative_to(mount) else path
    return _inside(data_root(), str(path))


def _relative(path: Path) -> str:
    """A path as the volume names it: relative to the mount point."""
    return Path(path).resolve().relative_to(data_root().resolve()).as_posix()


def _commit() -> None:
    """Persist this container's writes to the volume (a no-op when a body runs locally)."""
    if not modal.is_local():
        volume.commit()


def _reload() -> None:
    """See what other containers committed since this one started (a no-op locally)."""
    if not modal.is_local():
        volume.reload()


@contextmanager
def _commit_on_new_checkpoints(run_dir: Path) -> Iterator[None]:
    """Commit the volume whenever a complete checkpoint appears, so a preempted run resumes from it."""
    from motioncoach.training.sft import latest_resumable_checkpoint

    stop = threading.Event()
    seen = latest_resumable_checkpoint(run_dir)  # a resumed run's old checkpoints are committed already

    def watch() -> None:
        nonlocal seen
        while not stop.wait(CHECKPOINT_POLL_SECONDS):
            latest = latest_resumable_checkpoint(run_dir)
            if latest != seen:
                seen = latest
                _commit()

    thread = threading.Thread(target=watch, name="checkpoint-commits", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
