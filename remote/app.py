"""The Modal app: the modal profile's heavy steps, as thin functions over the domain code.

    uv run modal deploy -m remote.app

Each function unpacks its config, calls the same motioncoach function the local profile's task
calls, on the data dir /data/<name> of the volume, and commits the volume. Arguments and results
are JSON-able (pydantic models dumped to dicts), so the client and the containers never share
pickled classes. Heavy imports (torch, ultralytics, swift, vllm) live inside the function bodies:
this module imports anywhere, without GPU libraries and without Modal credentials. What a body needs
of its container (the mount, commits, claims) is remote.container's; the names both sides of the
boundary share are remote.contract's.

Deterministic failures (a missing dataset, a bad config, swift's own errors) are returned as
{"error": ...}, never raised: Modal retries a raised error, at the function's GPU price, and it
would fail the same way again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import modal

from motioncoach.errors import ConfigurationError
from remote import container
from remote.container import data_dir_for, data_root, inside, located, on_volume, read_json, relative, write_json
from remote.contract import (
    ADAPTERS_DIR,
    CALL_RECORD,
    MODELS_DIR,
    RESULT_FILE,
    SERVING_FILE,
    SETTINGS,
    TRAINER_LOG,
    VLLM_LOGS_DIR,
    container_version,
    run_claim,
)
from remote.images import CPU, POSE, SERVE, SERVE_CACHE_PATH, SERVE_CACHE_VOLUME, TRAIN, Runtime

# ---- Volume and secrets ----

volume = modal.Volume.from_name(SETTINGS.volume_name, create_if_missing=True)
VOLUMES = {SETTINGS.volume_path: volume}
serve_cache = modal.Volume.from_name(SERVE_CACHE_VOLUME, create_if_missing=True)  # vLLM's compile caches


@dataclass(frozen=True)
class SecretSpec:
    """A Modal secret, and the variables it may hold (a rehearsal takes those from the caller's environment)."""

    name: str
    keys: tuple[str, ...]
    required: tuple[str, ...] = ()

    def secret(self) -> modal.Secret:
        return modal.Secret.from_name(self.name, required_keys=list(self.required))


KAGGLE_SECRET = SecretSpec("kaggle-secret", ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"))
TEACHER_SECRET = SecretSpec(
    "gemini-api-key",
    ("GEMINI_API_KEY", "OPENROUTER_API_KEY", "GOOGLE_GEMINI_BASE_URL", "OPENROUTER_BASE_URL"),
    required=("GEMINI_API_KEY",),
)
HUB_SECRET = SecretSpec(
    "huggingface-secret",
    ("HF_TOKEN", "HF_ADAPTER_REPO_ID", "HF_DATASET_REPO_ID", "HF_MERGED_REPO_ID", "HF_ENDPOINT", "HF_HUB_DISABLE_XET"),
    required=("HF_TOKEN",),
)
# The endpoint's API token: with it, the endpoint is open to the app (no Modal proxy auth, which the app's
# client cannot send); without it the endpoint would not start, so the secret requires it.
SERVE_TOKEN = "MOTIONCOACH_SERVE_TOKEN"
SERVE_SECRET = SecretSpec("motioncoach-serve-secret", (SERVE_TOKEN,), required=(SERVE_TOKEN,))

# ---- Constants ----

MINUTES = 60
HOURS = 60 * MINUTES
POSE_GPU = "L4"  # one per shard: yolo26x-pose needs a few GB
EVAL_GPU = "H200"  # one card holds the 32B model in bf16 for vLLM, with room for a batch of every row
SERVE_GPU = "H200"
TRAIN_GPU = "H200:8"  # 32B bf16 weights replicated per GPU (DDP), plus LoRA, optimizer and activations
SMOKE_GPU = "L40S:2"  # the --smoke run: a 2B model under two processes, so the DDP launch is proven for cents
POSE_MAX_CONTAINERS = int(os.environ.get("MOTIONCOACH_POSE_MAX_CONTAINERS", "8"))  # read at deploy time
RETRIES = modal.Retries(max_retries=2, initial_delay=10.0, backoff_coefficient=3.0)
# Modal restarts preempted inputs on its own, without counting them. This retry is for infrastructure
# errors (a lost container, a failed volume reload) and for a timeout, which Modal retries too: the
# restarted run resumes from its latest checkpoint, and one that made no progress in its whole previous
# attempt stops at once (_no_progress). A hang is stopped by the training watchdog
# (TrainConfig.stall_timeout_s), which returns its error. The time budget is what it is: at most
# (1 + max_retries) x TRAIN_TIMEOUT, 6 hours of 8 x H200.
TRAIN_RETRIES = modal.Retries(max_retries=1, initial_delay=30.0, backoff_coefficient=1.0)
# 10 epochs measure 65-100 minutes on 8 x H200 (docs/modal-training-estimate.md): room for a slow
# volume and a resumed start, not for a second day of GPUs.
TRAIN_TIMEOUT = 3 * HOURS
SMOKE_TIMEOUT = 1 * HOURS
# The evaluation saves answers as they come: a retry continues where the last attempt stopped.
EVAL_RETRIES = modal.Retries(max_retries=1, initial_delay=10.0, backoff_coefficient=1.0)
# A GPU container stays up this long after its last input (Modal's default bills idle H200s for minutes).
GPU_IDLE = 60
RELEASE_CHECK_SECONDS = 60.0  # how often an endpoint container looks for another chosen release

app = modal.App(SETTINGS.app_name)


@dataclass(frozen=True)
class FunctionSpec:
    """What a function's containers get, as a rehearsal reproduces it."""

    env: dict[str, str]
    secrets: tuple[SecretSpec, ...]
    timeout: int
    retries: modal.Retries | None = None
    options: dict = field(default_factory=dict)


SPECS: dict[str, FunctionSpec] = {}


def function(runtime: Runtime, *, timeout: int, secrets: tuple[SecretSpec, ...] = (), retries=None, **options):
    """app.function on a runtime, remembering the spec for the rehearsal (remote.rehearsal)."""

    def register(body):
        SPECS[body.__name__] = FunctionSpec(runtime.env, secrets, timeout, retries, options)
        return app.function(
            image=runtime.image, timeout=timeout, secrets=[s.secret() for s in secrets], retries=retries, **options
        )(body)

    return register


# ---- Functions ----


@function(CPU, timeout=2 * MINUTES, retries=RETRIES)
def app_version() -> str:
    """The version of the code this deployment ships: the client stops when its checkout differs."""
    return container_version()


@function(CPU, volumes=VOLUMES, secrets=(KAGGLE_SECRET,), timeout=1 * HOURS, retries=RETRIES)
def download_images(source: dict, name: str) -> list[dict]:
    """Download or assemble the source in the data dir on the volume, and list its images."""
    from motioncoach.config import SourceConfig
    from motioncoach.sources import collect_images, source_kind
    from motioncoach.sources.kaggle import kaggle_credentials_present

    container.reload()
    data_dir = data_dir_for(name)
    config = SourceConfig.model_validate(source)
    kind = source_kind(config.source)
    if kind == "kaggle" and not kaggle_credentials_present():
        raise missing_secret(KAGGLE_SECRET, "KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY")
    if kind == "folder":  # the client uploaded it into the data dir
        config = config.model_copy(update={"source": str(inside(data_dir, config.source))})
    records = collect_images(config, data_dir)
    container.commit()
    return [record.model_dump(mode="json") for record in records]


@function(
    POSE,
    gpu=POSE_GPU,
    volumes=VOLUMES,
    timeout=30 * MINUTES,
    retries=RETRIES,
    max_containers=POSE_MAX_CONTAINERS,
    scaledown_window=GPU_IDLE,
    cpu=4.0,
)
def filter_pose_shard(records: list[dict], config: dict, name: str) -> dict:
    """Run the pose filter on one shard with a cache of its own; the report and that cache's path."""
    from motioncoach.config import PoseFilterConfig
    from motioncoach.pose import CACHE_FILE_NAME, filter_poses
    from motioncoach.pose.shards import seed_shard_cache, shard_cache_path
    from motioncoach.records import ImageRecord

    container.reload()
    data_dir = data_dir_for(name)
    shard = [ImageRecord.model_validate(record) for record in records]
    pose_config = PoseFilterConfig.model_validate(config)
    cache = shard_cache_path(data_dir, shard, pose_config)
    seed_shard_cache(data_dir / CACHE_FILE_NAME, cache, shard)
    report = filter_poses(shard, pose_config, cache)
    container.commit()
    return {"report": report.model_dump(mode="json"), "cache": relative(cache)}


@function(CPU, volumes=VOLUMES, timeout=10 * MINUTES, retries=RETRIES)
def merge_pose_shards(caches: list[str], name: str) -> str:
    """Fold the shards' caches into the data dir's yolo_cache.json; its path on the volume."""
    from motioncoach.pose import CACHE_FILE_NAME
    from motioncoach.pose.shards import merge_pose_caches

    container.reload()
    target = data_dir_for(name) / CACHE_FILE_NAME
    shards = [inside(data_root(), cache) for cache in caches]
    merge_pose_caches(target, shards)
    for shard in shards:
        shard.unlink(missing_ok=True)
    container.commit()
    return relative(target)


@function(CPU, volumes=VOLUMES, secrets=(TEACHER_SECRET,), timeout=4 * HOURS, retries=RETRIES, cpu=2.0)
def label_shard(samples: list[dict], config: dict, name: str, shards: int = 1) -> dict:
    """Label one shard of the kept poses with the teacher's concurrency; the shard's own store sits beside
    the data dir's on the volume (seeded from it) until merge_label_shards folds it in."""
    from motioncoach.config import LabelConfig
    from motioncoach.labels.outcomes import label_samples
    from motioncoach.labels.rules import RulesLabeler
    from motioncoach.records import PoseSample
    from motioncoach.teachers.keys import required_keys
    from motioncoach.teachers.labeling import label_with_teachers
    from motioncoach.teachers.shards import requests_today, seed_shard_store, shard_config, shard_dir
    from motioncoach.teachers.store import STORE_FILE
    from motioncoach.teachers.store_copy import store_on_local_disk

    container.reload()
    data_dir = data_dir_for(name)
    label_config = LabelConfig.model_validate(config)
    poses = [PoseSample.model_validate(sample) for sample in samples]
    if label_config.labeler == "rules":
        return {"report": label_samples(poses, RulesLabeler()).model_dump(mode="json"), "store": None}
    missing = [key for key in required_keys(label_config.labeler) if not os.environ.get(key, "").strip()]
    if missing:
        raise missing_secret(TEACHER_SECRET, " and ".join(missing))
    own = shard_dir(data_dir, poses, label_config)
    with tempfile.TemporaryDirectory() as scratch, store_on_local_disk(own, scratch, container.commit) as store_dir:
        seed_shard_store(data_dir / STORE_FILE, Path(store_dir) / STORE_FILE)
        used = requests_today(Path(store_dir) / STORE_FILE, label_config)
        report = label_with_teachers(poses, shard_config(label_config, shards, used), store_dir)
    container.commit()
    return {"report": report.model_dump(mode="json"), "store": relative(own / STORE_FILE)}


@function(CPU, volumes=VOLUMES, timeout=30 * MINUTES, retries=RETRIES)
def merge_label_shards(samples: list[dict], shards: list[dict], name: str) -> dict:
    """Fold the shards' stores into the data dir's label store, write labels.jsonl, return the whole report.

    The shards' stores are removed only once the merged store and labels.jsonl are committed, and merging
    is idempotent, so a retry after any partial commit neither fails nor counts a request twice."""
    from motioncoach.labels.outcomes import LabelReport
    from motioncoach.labels.store import write_label_log
    from motioncoach.records import PoseSample
    from motioncoach.teachers.shards import merge_label_reports, merge_label_stores
    from motioncoach.teachers.store import STORE_FILE
    from motioncoach.teachers.store_copy import store_on_local_disk

    container.reload()
    data_dir = data_dir_for(name)
    stores = [inside(data_root(), shard["store"]) for shard in shards if shard["store"]]
    commit = container.commit
    with tempfile.TemporaryDirectory() as tmp, store_on_local_disk(data_dir, Path(tmp) / "home", commit) as home:
        copies = []
        for store in stores:
            if not store.exists():
                continue  # merged and removed by an earlier try whose result was lost
            copies.append(Path(tmp) / "shards" / store.parent.name / store.name)
            copies[-1].parent.mkdir(parents=True)
            shutil.copyfile(store, copies[-1])
        merge_label_stores(Path(home) / STORE_FILE, copies)
    poses = [PoseSample.model_validate(sample) for sample in samples]
    report = merge_label_reports(poses, [LabelReport.model_validate(shard["report"]) for shard in shards])
    write_label_log(report, data_dir)
    container.commit()
    for store in stores:
        shutil.rmtree(store.parent, ignore_errors=True)
    container.commit()
    return report.model_dump(mode="json")


@function(CPU, volumes=VOLUMES, timeout=30 * MINUTES, retries=RETRIES)
def write_dataset(labeled: list[dict], split: dict, name: str) -> dict:
    """Write pose_dataset.jsonl and the 90/10 split in the data dir; each file's path, sha256 and rows."""
    from motioncoach.config import SplitConfig
    from motioncoach.dataset import SPLITS_DIR, build_dataset, split_dataset
    from motioncoach.labels.outcomes import LabelOutcome

    container.reload()
    data_dir = data_dir_for(name)
    dataset = build_dataset([LabelOutcome.model_validate(outcome) for outcome in labeled], data_dir)
    summary = split_dataset(dataset.path, SplitConfig.model_validate(split), data_dir / SPLITS_DIR)
    container.commit()
    return _dataset_files(dataset, summary)


@function(CPU, volumes=VOLUMES, secrets=(TEACHER_SECRET,), timeout=4 * HOURS, retries=RETRIES, cpu=2.0)
def relabel(config: dict, split: dict, name: str) -> dict:
    """The nightly relabel where the images and the store are: ask again for the labels that need it,
    then rebuild labels.jsonl, pose_dataset.jsonl and the split on the volume."""
    from motioncoach.config import LabelConfig, SplitConfig
    from motioncoach.dataset import SPLITS_DIR, build_dataset, split_dataset
    from motioncoach.labels.store import write_label_log
    from motioncoach.teachers.keys import required_keys
    from motioncoach.teachers.relabel import current_labels, relabel_data_dir
    from motioncoach.teachers.store_copy import store_on_local_disk

    container.reload()
    data_dir = data_dir_for(name)
    label_config = LabelConfig.model_validate(config)
    missing = [key for key in required_keys(label_config.labeler) if not os.environ.get(key, "").strip()]
    if missing:
        raise missing_secret(TEACHER_SECRET, " and ".join(missing))
    commit = container.commit
    with tempfile.TemporaryDirectory() as scratch, store_on_local_disk(data_dir, scratch, commit) as store_dir:
        result = relabel_data_dir(label_config, data_dir, store_dir=store_dir)
        report = current_labels(result.samples, label_config, store_dir, data_dir)
    write_label_log(report, data_dir)
    dataset = build_dataset(report.labeled, data_dir)
    summary = split_dataset(dataset.path, SplitConfig.model_validate(split), data_dir / SPLITS_DIR)
    container.commit()
    return {"result": result.model_dump(mode="json"), "files": _dataset_files(dataset, summary)}


@function(CPU, volumes=VOLUMES, secrets=(HUB_SECRET,), timeout=2 * HOURS, retries=RETRIES)
def download_base_model(repo_id: str) -> str:
    """Copy a Hugging Face model onto the volume once (swift trains from a local directory); its path.

    A directory already on the volume (base_model="/data/models/...") is used as it is.
    """
    from motioncoach.training.base_model import ensure_local_model

    container.reload()
    path = ensure_local_model(repo_id, data_root() / MODELS_DIR)
    container.commit()
    return str(path)


@function(
    TRAIN,
    gpu=TRAIN_GPU,
    volumes=VOLUMES,
    timeout=TRAIN_TIMEOUT,
    retries=TRAIN_RETRIES,
    scaledown_window=GPU_IDLE,
    cpu=32.0,
    memory=256 * 1024,
)
def train(config: dict, name: str, expected_sha256: dict[str, str], run_dir: str | None = None) -> dict:
    """`swift sft` under 8 processes on the split in the data dir, resuming from its latest checkpoint.

    run_dir (relative to the volume) is where the client records and follows the call; by default
    the run's own key under <name>/runs/.
    """
    return _train(config, name, expected_sha256, run_dir, timeout=TRAIN_TIMEOUT)


@function(
    TRAIN, gpu=SMOKE_GPU, volumes=VOLUMES, timeout=SMOKE_TIMEOUT, retries=TRAIN_RETRIES,
    scaledown_window=GPU_IDLE,
)  # fmt: skip
def train_smoke(config: dict, name: str, expected_sha256: dict[str, str], run_dir: str | None = None) -> dict:
    """The same training on two small GPUs under two processes: the --smoke run that proves an account
    and the multi-process launch before the full one."""
    return _train(config, name, expected_sha256, run_dir, timeout=SMOKE_TIMEOUT)


def _train(config: dict, name: str, expected_sha256: dict[str, str], run_dir: str | None, timeout: float) -> dict:
    from pydantic import ValidationError

    from motioncoach.config import TrainConfig
    from motioncoach.dataset import load_split
    from motioncoach.errors import MissingDatasetError
    from motioncoach.training.session import run_dir_for

    container.reload()
    data_dir = data_dir_for(name)
    try:
        train_config = TrainConfig.model_validate(config)
        split = load_split(data_dir)
    except (ValidationError, MissingDatasetError) as error:
        return {"error": f"Training did not start: {error}. It was not retried; a rerun starts it again."}
    found = {"train": split.train.sha256, "val": split.val.sha256}
    if found != expected_sha256:
        return {
            "error": f"The split on the volume ({relative(data_dir)}/splits) is not the one in your local data dir: "
            f"run `motioncoach dataset --profile modal --data-dir <dir named {name!r}>` again."
        }
    run = inside(data_root(), run_dir) if run_dir else run_dir_for(split, train_config, data_dir)
    me = container.call_id()
    holder = _claim(relative(run), me)
    if holder != me:  # another call owns the run dir: it trains, this one costs only its start
        return {"claimed_by": holder, "run_dir": relative(run)}
    if stopped := _no_progress(run, me, timeout):
        return {"error": stopped, "run_dir": relative(run)}
    record = read_json(run / CALL_RECORD) or {}
    attempts = (record.get("attempts") if record.get("call_id") == me else None) or []
    attempts.append({"started": time.time(), "checkpoint": _latest_checkpoint_name(run)})
    write_json(run / CALL_RECORD, {"call_id": me, "state": "running", "at": time.time(), "heartbeat": time.time(),
                                   "attempts": attempts})  # fmt: skip
    container.commit_soon("the training call's record", tries=1)
    result = _train_in(run, train_config, split, data_dir)
    record = {"call_id": me, "state": "failed" if "error" in result else "finished", "at": time.time(),
              "attempts": attempts}  # fmt: skip
    write_json(run / RESULT_FILE, result)
    write_json(run / CALL_RECORD, record | ({"reason": result["error"][:500]} if "error" in result else {}))
    container.commit_soon("the training result")
    return result


def _claim(run_dir: str, me: str) -> str:
    """The call that owns the run dir: this one when its claim was put first (atomically, in the claims Dict),
    or the one that was; an attempt of the same call (a retry, a preempted input) finds its own claim."""
    claims = container.claims()
    key = run_claim(run_dir)
    for _ in range(3):
        if claims.put(key, {"call_id": me, "at": time.time()}, skip_if_exists=True):
            return me
        holder = claims.get(key)
        if holder is not None:
            return holder["call_id"]
    raise RuntimeError(f"the claim on {run_dir} keeps changing hands")  # raised: Modal retries it


def _no_progress(run: Path, me: str, timeout: float) -> str | None:
    """Why a retry of this call stops at once: its previous attempt ran its whole time limit without a new
    checkpoint, so the next would too (Modal retries a timeout as it retries an error)."""
    record = read_json(run / CALL_RECORD) or {}
    attempts = record.get("attempts") if record.get("call_id") == me else None
    if not attempts:
        return None
    previous = attempts[-1]
    ran = time.time() - previous["started"]
    if ran < 0.95 * timeout or _latest_checkpoint_name(run) != previous.get("checkpoint"):
        return None  # a preempted restart, or an attempt that got somewhere: resume
    return (
        f"The training call ran its whole {timeout / 3600:.1f} h limit without completing a checkpoint "
        f"(still at {previous.get('checkpoint') or 'none'}), so its retry stopped at once instead of paying for "
        "another attempt: look at swift.log in the run dir on the volume, and give it a longer timeout or a "
        "smaller step before a rerun."
    )


def _latest_checkpoint_name(run: Path) -> str | None:
    from motioncoach.training.checkpoints import latest_resumable_checkpoint

    latest = latest_resumable_checkpoint(run) if run.is_dir() else None
    return latest.name if latest else None


def _train_in(run: Path, train_config, split, data_dir: Path) -> dict:
    from motioncoach.errors import TrainingError
    from motioncoach.training.failures import explain_training_failure
    from motioncoach.training.plot import plot_losses
    from motioncoach.training.sft import run_sft

    # The trainer's log stays open while it runs: on local disk, as a reload fails with open files on the volume.
    with tempfile.TemporaryDirectory(prefix="trainer-log-") as scratch:
        trainer_log = Path(scratch) / TRAINER_LOG
        try:
            with container.committing_checkpoints(run, trainer_log) as committed:
                result = run_sft(
                    train_config,
                    dataset=split.train.path,
                    val_dataset=split.val.path,
                    image_root=data_dir,
                    output_dir=run,
                    log_path=trainer_log,
                )
        except TrainingError as error:
            # swift failed on its own (out of memory, a bad flag, a stall): returned, not raised, because
            # Modal would retry a raised error at 8xH200 prices and it would fail the same way.
            return {"error": explain_training_failure(str(error), train_config), "run_dir": relative(run)}
    plot = plot_losses(result.history, run / "loss.png")
    return {
        "run_dir": relative(result.output_dir),
        "checkpoint": relative(result.best_checkpoint),
        "eval_loss": result.best_eval_loss,
        "history": result.history,
        "loss_plot": relative(plot),
        "committed_while_training": committed,  # what a preempted or lost container would have resumed from
    }


@function(SERVE, gpu=EVAL_GPU, volumes=VOLUMES, timeout=1 * HOURS, retries=EVAL_RETRIES, scaledown_window=GPU_IDLE)
def evaluate_adapter(request: dict, name: str) -> dict:
    """Base model, fine-tuned model and rules scored on the validation split, answered by vLLM as the
    release will be served (the merged model); eval.json and the gallery on the volume."""
    from motioncoach.evaluation import run_evaluation

    container.reload()
    request = located(request, "adapter_dir", "out_dir", "merged_dir") | {"data_dir": str(data_dir_for(name))}
    result = run_evaluation(request, on_answers=container.commit)  # answers kept as they come: a retry continues
    container.commit()
    return result


@function(SERVE, gpu=EVAL_GPU, volumes=VOLUMES, timeout=1 * HOURS, retries=EVAL_RETRIES, scaledown_window=GPU_IDLE)
def benchmark_models(request: dict, name: str) -> dict:
    """Base model and fine-tuned model (the merged release, in vLLM as it is served) on a benchmark suite on the
    volume; the poses detected on its photos and every answer."""
    from motioncoach.benchmarks.release import answer_models

    container.reload()
    return answer_models(located(request, "suite_dir", "adapter_dir", "merged_dir"))


@function(CPU, volumes=VOLUMES, secrets=(TEACHER_SECRET,), timeout=2 * HOURS, retries=RETRIES)
def benchmark_teacher(request: dict, poses: dict, name: str) -> dict:
    """The teacher on a benchmark suite on the volume, each request paid once: its answers join the label store."""
    from motioncoach.benchmarks.release import answer_teacher
    from motioncoach.teachers.store import STORE_FILE
    from motioncoach.teachers.store_copy import store_on_local_disk

    container.reload()
    data_dir = data_dir_for(name)
    request = located(request, "suite_dir")
    commit = container.commit
    with tempfile.TemporaryDirectory() as scratch, store_on_local_disk(data_dir, scratch, commit) as store_dir:
        result = answer_teacher(request, poses, Path(store_dir) / STORE_FILE)
    container.commit()
    return result


@function(CPU, volumes=VOLUMES, timeout=30 * MINUTES, retries=RETRIES)
def package_adapter(run_dir: str, name: str, folder: str) -> dict:
    """Copy the best checkpoint by eval_loss (not the latest) to adapters/<run>/<folder>; its path, size and
    where its LoRA modules sit. The run dir keeps no optimizer state afterwards."""
    from motioncoach.serving.merge import lora_placement
    from motioncoach.training.checkpoints import (
        adapter_size_bytes,
        copy_adapter,
        find_best_checkpoint,
        strip_optimizer_state,
    )

    container.reload()
    run = inside(data_root(), run_dir)
    best = find_best_checkpoint(run)
    dest = inside(data_dir_for(name) / ADAPTERS_DIR / run.name, folder)
    copy_adapter(best, dest)
    if (run / "loss.png").is_file():
        shutil.copyfile(run / "loss.png", dest / "loss.png")
    left = strip_optimizer_state(run)
    container.commit()
    return {
        "path": relative(dest),
        "bytes": adapter_size_bytes(dest),
        "checkpoint": relative(best),
        "placement": lora_placement(dest).model_dump(),
        "run_dir": left.model_dump(mode="json") | {"path": relative(run)},
    }


@function(TRAIN, volumes=VOLUMES, timeout=2 * HOURS, retries=RETRIES, cpu=16.0, memory=192 * 1024)
def merge_adapter(
    adapter_folder: str, base_model: str, out_folder: str, dtype: str = "auto", max_pixels: int | None = None
) -> dict:
    """Fold a packaged adapter into its base model on the volume: a release vLLM and transformers load
    whole, whose processor resizes photos to the run's max_pixels. A folder already merged from the same
    adapter, base and pixels is kept."""
    from motioncoach.serving.merge import merge_adapter as merge

    container.reload()
    out = on_volume(out_folder)
    record = merge(str(on_volume(base_model)), on_volume(adapter_folder), out, dtype=dtype, max_pixels=max_pixels)
    container.commit()
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"path": relative(out), "bytes": size, "record": record.model_dump(mode="json")}


@function(CPU, secrets=(HUB_SECRET,), timeout=10 * MINUTES, retries=RETRIES)
def hub_account(hub: dict, repos: list[str] | None = None) -> dict:
    """Whose token huggingface-secret holds, whether it may write the named repos, and the repos the secret
    names: the modal profile's Hub preflight."""
    from motioncoach.publish import HubConfig, HubSettings, check_write_access, whoami

    settings, config = HubSettings(), HubConfig.model_validate(hub)
    for repo_id in repos or []:
        check_write_access(settings, config, repo_id)
    return {
        "user": whoami(settings, config) if repos or settings.token else None,  # a token is needed to upload only
        "adapter_repo_id": settings.adapter_repo_id,
        "dataset_repo_id": settings.dataset_repo_id,
        "merged_repo_id": settings.merged_repo_id,
    }


@function(CPU, volumes=VOLUMES, secrets=(HUB_SECRET,), timeout=3 * HOURS, retries=RETRIES)
def upload_adapter(folder: str, repo_id: str, hub: dict) -> dict:
    """Upload an adapter folder on the volume (weights, card, eval.json, lineage.json) to the Hub."""
    from motioncoach.publish import HubConfig, HubSettings, upload_adapter_folder

    container.reload()
    status = upload_adapter_folder(on_volume(folder), repo_id, HubSettings(), HubConfig.model_validate(hub))
    return status.model_dump(mode="json")


@function(CPU, volumes=VOLUMES, secrets=(HUB_SECRET,), timeout=4 * HOURS, retries=RETRIES)
def upload_merged(folder: str, repo_id: str, hub: dict) -> dict:
    """Upload merged weights on the volume (HF_MERGED_REPO_ID) next to the adapter's repo."""
    from motioncoach.publish import HubConfig, HubSettings, upload_merged_folder

    container.reload()
    status = upload_merged_folder(on_volume(folder), repo_id, HubSettings(), HubConfig.model_validate(hub))
    return status.model_dump(mode="json")


@function(CPU, volumes=VOLUMES, secrets=(HUB_SECRET,), timeout=3 * HOURS, retries=RETRIES)
def upload_dataset(name: str, lineage: dict, repo_id: str, hub: dict) -> dict:
    """Stage the split, its images and the dataset card on the volume, and upload them to a dataset repo."""
    from motioncoach.dataset import load_split
    from motioncoach.publish import HubConfig, HubSettings, Lineage, stage_dataset, upload_folder

    container.reload()
    data_dir = data_dir_for(name)
    folder = stage_dataset(data_dir, load_split(data_dir), Lineage.model_validate(lineage))
    status = upload_folder(
        folder, repo_id, HubSettings(), HubConfig.model_validate(hub), repo_type="dataset",
        commit_message="Upload MotionCoach dataset",
    )  # fmt: skip
    return status.model_dump(mode="json")


@app.cls(
    image=SERVE.image,
    gpu=SERVE_GPU,
    volumes={**VOLUMES, SERVE_CACHE_PATH: serve_cache},
    secrets=[HUB_SECRET.secret(), SERVE_SECRET.secret()],
    timeout=10 * MINUTES,  # per request: the app's route answers within its deadline, 9 minutes
    scaledown_window=5 * MINUTES,  # then back to zero containers: no GPU bill while nobody asks
    startup_timeout=20 * MINUTES,  # vLLM loads 64 GB of weights from the volume
)
@modal.concurrent(max_inputs=64)
class CoachEndpoint:
    """The coach on one H200: vLLM serving the release named in /data/serving.json, behind the same
    HTTP app as `motioncoach serve` (the app's route, POST /v1/coach), with vLLM's OpenAI-compatible API
    under /v1 too. Every route but /health needs the token of the secret motioncoach-serve-secret.

    vLLM's log of each start is kept on the volume (logs/vllm/), committed when a start fails. A container
    that sees another release chosen (serving.json, read through the volume's API every minute) stops
    taking requests and goes: the next one starts on the chosen release."""

    @modal.enter()
    def start(self) -> None:
        import threading

        from motioncoach.serving.endpoint import read_serving_config, start_endpoint

        container.reload()
        root = data_root()
        self.serving = read_serving_config(root / SERVING_FILE).release
        try:
            self.endpoint = start_endpoint(
                root / SERVING_FILE, root, log_dir=root / VLLM_LOGS_DIR, cache_dir=Path(SERVE_CACHE_PATH)
            )
        except BaseException:
            container.commit_soon("the failed start's vLLM log", tries=1)
            raise
        threading.Thread(target=self._retire_for_another_release, name="release-watch", daemon=True).start()

    @modal.asgi_app()
    def web(self):
        return self.endpoint.app

    @modal.exit()
    def stop(self) -> None:
        self.endpoint.stop()

    def _retire_for_another_release(self) -> None:
        from modal.experimental import stop_fetching_inputs

        from motioncoach.serving.endpoint import ServingConfig

        while True:
            time.sleep(RELEASE_CHECK_SECONDS)
            try:
                chosen = ServingConfig.model_validate_json(b"".join(volume.read_file(SERVING_FILE))).release
            except Exception as exc:  # noqa: BLE001 - looked at again in a minute; serving goes on
                print(f"could not read {SERVING_FILE} ({exc}); serving {self.serving} on", flush=True)
                continue
            if chosen != self.serving:
                print(f"{chosen} was chosen while this container serves {self.serving}: it takes no more "
                      "requests, and the next container starts on the chosen release", flush=True)  # fmt: skip
                stop_fetching_inputs()
                return


# ---- Helpers ----


def _dataset_files(dataset, summary) -> dict:
    """Each written file's volume path, sha256 and rows, for the client's checked copies."""
    files = {"dataset": dataset, "train": summary.train, "val": summary.val}
    return {key: {"path": relative(f.path), "sha256": f.sha256, "rows": f.rows} for key, f in files.items()}


def missing_secret(secret: SecretSpec, keys: str) -> ConfigurationError:
    """The error for a Modal secret that lacks what a step needs, with the command that fixes it."""
    from motioncoach.config import MODAL_SECRETS

    return ConfigurationError(
        f"The Modal secret {secret.name!r} does not provide {keys}: create it with `{MODAL_SECRETS[secret.name]}` "
        "(add --force to replace an existing one); deployed functions read it at their next start."
    )
