"""The `motioncoach` command: each subcommand runs one Prefect flow.

Without PREFECT_API_URL the flows run against a temporary local Prefect server; with it, against
that server, where the runs show up in the UI.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cli import use
from cli.audit import audit
from cli.benchmark import benchmark
from motioncoach.config import (
    DEFAULT_PRICES,
    SMOKE_BASE_MODEL,
    SMOKE_SAMPLES,
    LabelConfig,
    LabelingSettings,
    Profile,
    default_labeler,
    default_source,
)
from motioncoach.errors import ConfigurationError, MotionCoachError
from motioncoach.runtime import apply_local_defaults

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Distil a coaching dataset and fine-tune Qwen3-VL.")


class Labeler(StrEnum):
    rules = "rules"
    gemini = "gemini"
    openrouter = "openrouter"
    consensus = "consensus"


ProfileOption = Annotated[Profile, typer.Option(help="Where heavy steps run: local (this machine) or modal.")]
SourceOption = Annotated[
    str | None,
    typer.Option(
        help="'samples' (offline photos), 'kaggle', or a folder with one sub-folder per activity "
        "(default: samples; kaggle with --profile modal)."
    ),
]
LabelerOption = Annotated[
    Labeler | None,
    typer.Option(
        help="Who writes the labels: rules (offline), gemini, openrouter, or consensus (both) "
        "(default: rules; gemini with --profile modal).",
        show_default=False,
    ),
]
DataDirOption = Annotated[Path, typer.Option(help="Where images, caches, labels and the dataset live.")]
AdapterDirOption = Annotated[Path, typer.Option(help="Where the trained LoRA adapter is placed.")]
MaxSamplesOption = Annotated[int, typer.Option(min=1, help="Images to use, spread evenly over activities.")]
# Teacher flags, shared by `run` and `dataset`.
ConcurrencyOption = Annotated[int, typer.Option(min=1, help="Teacher requests in flight at once.")]
RpmOption = Annotated[int | None, typer.Option(min=1, help="Requests per minute per teacher.")]
FailureRateOption = Annotated[
    float, typer.Option(min=0, max=1, help="Fail labeling when more than this share of images failed.")
]
DailyBudgetOption = Annotated[int | None, typer.Option(min=1, help="Requests per teacher per UTC day.")]
MaxCostOption = Annotated[
    float | None, typer.Option(min=0, help="Stop before this run's teacher spend (USD) exceeds it.")
]
BatchOption = Annotated[bool, typer.Option(help="Gemini Batch API: half price, results collected on a later run.")]
WaitOption = Annotated[
    bool, typer.Option(help="With --batch: wait until every job has ended and its answers are stored.")
]
RebuyOption = Annotated[
    bool,
    typer.Option(
        help="Buy again labels the store holds under an older request, when more than 5% of them would be (the "
        "prompts, the schema, the cues, the model or its parameters changed); without it such a run stops first."
    ),
]
EstimateOption = Annotated[
    bool,
    typer.Option(
        help="Price the labeling and stop: the images to label, the requests, tokens and cost; nothing is sent."
    ),
]
KeepDisagreementsOption = Annotated[
    bool, typer.Option(help="Consensus: also train on labels the teachers disagree on.")
]
PriceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--price",
        help="A teacher model's price as MODEL=IN,OUT[,CACHED] in USD per million input, output and cached input "
        "tokens (repeatable); needed for --max-cost and the cost report with a paid model the built-in table lacks.",
        show_default=False,
    ),
]
GeminiModelOption = Annotated[str, typer.Option(help="Gemini model id.")]
OpenRouterModelOption = Annotated[str, typer.Option(help="OpenRouter model id (a vision model).")]
# Release flags, shared by `run` and `train`.
GateOption = Annotated[
    bool, typer.Option("--gate/--no-gate", help="Upload the adapter only if it beats its base model on validation.")
]
PushDatasetOption = Annotated[
    bool, typer.Option(help="Also upload the dataset (splits, images, card) to HF_DATASET_REPO_ID.")
]
MaxDownloadOption = Annotated[
    int,
    typer.Option(
        min=0,
        help="On Modal: download the adapter into --adapter-dir when it is at most this many MB; a larger one "
        "stays on the volume (the release is complete either way, and the Hub upload runs from the volume).",
    ),
]
SmokeOption = Annotated[
    bool,
    typer.Option(
        help=f"With --profile modal: a cheap real run to prove the account, secrets and images first: "
        f"{SMOKE_SAMPLES} photos, {SMOKE_BASE_MODEL} on two GPUs for one epoch (well under a dollar).",
    ),
]
WaitForLockOption = Annotated[
    float,
    typer.Option(
        min=0,
        help="Seconds to wait for a data dir another run holds, instead of failing at once (the deployments "
        "wait up to 6 hours).",
    ),
]
AuditOption = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Labels people judge before training, stratified by activity (default: 0; 30 with --profile modal). "
        "A run with a Prefect server waits for the verdicts in its input form; otherwise it stops 'Awaiting audit' "
        "and `motioncoach audit` asks for them.",
        show_default=False,
    ),
]
BenchmarkOption = Annotated[
    str | None,
    typer.Option(
        help="After the evaluation, score base, student and teacher on a human-labelled benchmark: a suite folder, "
        "or 'exact'.",
        show_default=False,
    ),
]
BenchmarkTeacherOption = Annotated[
    str,
    typer.Option(help="With --benchmark: the teacher scored beside the models (gemini, openrouter, rules, none)."),
]
RehearseOption = Annotated[
    Path | None,
    typer.Option(
        help="With --profile modal: rehearse for free, with no Modal account. Every function of the app runs "
        "locally in its own process on this folder, which stands in for the volume (what the app sees at "
        "/data), with the local yolo11n-pose and a tiny Qwen3-VL instead of the heavy models.",
        show_default=False,
    ),
]


def _rehearse(profile: Profile, folder: Path | None) -> None:
    """Point the modal profile at a rehearsal volume (read by remote.client.connect)."""
    if folder is None:
        return
    if profile is not Profile.modal:
        raise ConfigurationError("--rehearse-volume rehearses the modal profile: add --profile modal.")
    from remote.rehearsal import rehearse_on

    rehearse_on(folder)


def _wait_for_lock(seconds: float) -> None:
    """Queue behind a run that holds the data dir (read by motioncoach.lock in every flow)."""
    if seconds:
        import os

        from motioncoach.lock import WAIT_VARIABLE

        os.environ[WAIT_VARIABLE] = str(seconds)


def _fail(exc: MotionCoachError) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _label_config(labeler: Labeler | None, profile: Profile, price: list[str] | None = None, **options) -> LabelConfig:
    """Validate the labeling flags and check credentials before Prefect starts.

    Locally that is the labeler's API key; on Modal the keys are in Modal secrets, and what must be
    here is a Modal token.
    """
    from motioncoach.teachers.labeling import check_label_config
    from motioncoach.teachers.pricing import parse_price

    if profile is Profile.modal:
        from remote.client import check_modal_credentials

        check_modal_credentials()
    prices = {**DEFAULT_PRICES, **dict(parse_price(text) for text in price or [])}
    config = LabelConfig(labeler=labeler.value if labeler else default_labeler(profile), prices=prices, **options)
    check_label_config(config)
    if profile is Profile.local:
        from motioncoach.teachers.keys import check_keys

        check_keys(config.labeler)
    return config


def settings_of(labeling: LabelConfig) -> LabelingSettings:
    """The labeling form a flow takes: everything but the labeler, which is its own parameter."""
    return LabelingSettings.model_validate(labeling.model_dump(exclude={"labeler"}))


def _check_hub(push_dataset: bool, profile: Profile) -> None:
    """Name the missing HF_* variable before Prefect starts, when an upload is asked for.

    On the modal profile the token is huggingface-secret's: the flow's preflight checks it there.
    """
    from motioncoach.publish import HubSettings, check_hub_settings

    check_hub_settings(HubSettings(), push_dataset, token_required=profile is Profile.local)


def _run(flow_call: Callable[[], object]) -> None:
    try:
        flow_call()
    except MotionCoachError as exc:
        raise _fail(exc) from None


@app.command()
def run(
    profile: ProfileOption = Profile.local,
    source: SourceOption = None,
    labeler: LabelerOption = None,
    data_dir: DataDirOption = Path("./data"),
    adapter_dir: AdapterDirOption = Path("./lora-adapter"),
    max_samples: MaxSamplesOption = 2500,
    skip_train: Annotated[bool, typer.Option(help="Stop after the dataset is split.")] = False,
    concurrency: ConcurrencyOption = 16,
    rpm: RpmOption = None,
    max_failure_rate: FailureRateOption = 0.2,
    daily_budget: DailyBudgetOption = None,
    max_cost: MaxCostOption = None,
    batch: BatchOption = False,
    wait: WaitOption = False,
    rebuy: RebuyOption = False,
    estimate: EstimateOption = False,
    keep_disagreements: KeepDisagreementsOption = False,
    gemini_model: GeminiModelOption = "gemini-3-flash-preview",
    openrouter_model: OpenRouterModelOption = "google/gemma-3-27b-it:free",
    price: PriceOption = None,
    gate: GateOption = True,
    push_dataset: PushDatasetOption = False,
    max_download_mb: MaxDownloadOption = 2000,
    smoke: SmokeOption = False,
    audit: AuditOption = None,
    benchmark: BenchmarkOption = None,
    wait_for_lock: WaitForLockOption = 0,
    rehearse_volume: RehearseOption = None,
) -> None:
    """The whole pipeline: dataset, training, evaluation, then the adapter (uploaded if it is better)."""
    try:
        _rehearse(profile, rehearse_volume)
        _wait_for_lock(wait_for_lock)
        if smoke and profile is not Profile.modal:
            raise ConfigurationError("--smoke is a short real run on Modal: add --profile modal.")
        if smoke:
            max_samples = min(max_samples, SMOKE_SAMPLES)
        labeling = _label_config(
            labeler, profile, concurrency=concurrency, rpm=rpm, max_failure_rate=max_failure_rate,
            daily_budget=daily_budget, max_cost=max_cost, batch=batch, keep_disagreements=keep_disagreements,
            gemini_model=gemini_model, openrouter_model=openrouter_model, price=price, wait=wait, rebuy=rebuy,
        )  # fmt: skip
        if not skip_train:
            _check_hub(push_dataset, profile)
    except MotionCoachError as exc:
        raise _fail(exc) from None
    from flows.pipeline import pipeline

    _run(
        lambda: pipeline(
            source=source or default_source(profile),
            labeler=labeling.labeler,
            data_dir=data_dir,
            adapter_dir=adapter_dir,
            max_samples=max_samples,
            skip_train=skip_train,
            profile=profile,
            labeling=settings_of(labeling),
            gate=gate,
            push_dataset=push_dataset,
            max_download_mb=max_download_mb,
            smoke=smoke,
            audit=audit,
            benchmark=benchmark,
            estimate=estimate,
        )
    )


@app.command()
def dataset(
    profile: ProfileOption = Profile.local,
    source: SourceOption = None,
    labeler: LabelerOption = None,
    data_dir: DataDirOption = Path("./data"),
    max_samples: MaxSamplesOption = 2500,
    concurrency: ConcurrencyOption = 16,
    rpm: RpmOption = None,
    max_failure_rate: FailureRateOption = 0.2,
    daily_budget: DailyBudgetOption = None,
    max_cost: MaxCostOption = None,
    batch: BatchOption = False,
    wait: WaitOption = False,
    rebuy: RebuyOption = False,
    estimate: EstimateOption = False,
    keep_disagreements: KeepDisagreementsOption = False,
    gemini_model: GeminiModelOption = "gemini-3-flash-preview",
    openrouter_model: OpenRouterModelOption = "google/gemma-3-27b-it:free",
    price: PriceOption = None,
    audit: AuditOption = None,
    wait_for_lock: WaitForLockOption = 0,
    rehearse_volume: RehearseOption = None,
) -> None:
    """Download, filter, label and split: writes pose_dataset.jsonl and splits/."""
    try:
        _rehearse(profile, rehearse_volume)
        _wait_for_lock(wait_for_lock)
        labeling = _label_config(
            labeler, profile, concurrency=concurrency, rpm=rpm, max_failure_rate=max_failure_rate,
            daily_budget=daily_budget, max_cost=max_cost, batch=batch, keep_disagreements=keep_disagreements,
            gemini_model=gemini_model, openrouter_model=openrouter_model, price=price, wait=wait, rebuy=rebuy,
        )  # fmt: skip
    except MotionCoachError as exc:
        raise _fail(exc) from None
    from flows.dataset import build_dataset

    _run(
        lambda: build_dataset(
            source=source or default_source(profile),
            labeler=labeling.labeler,
            data_dir=data_dir,
            max_samples=max_samples,
            profile=profile,
            labeling=settings_of(labeling),
            audit=audit,
            estimate=estimate,
        )
    )


@app.command()
def train(
    profile: ProfileOption = Profile.local,
    data_dir: DataDirOption = Path("./data"),
    adapter_dir: AdapterDirOption = Path("./lora-adapter"),
    gate: GateOption = True,
    push_dataset: PushDatasetOption = False,
    max_download_mb: MaxDownloadOption = 2000,
    benchmark: BenchmarkOption = None,
    benchmark_teacher: BenchmarkTeacherOption = "none",
    wait_for_lock: WaitForLockOption = 0,
    rehearse_volume: RehearseOption = None,
) -> None:
    """Train on the dataset already in --data-dir, evaluate, and place (or upload) the adapter."""
    from motioncoach.dataset import load_split

    try:
        _rehearse(profile, rehearse_volume)
        _wait_for_lock(wait_for_lock)
        if profile is Profile.modal:
            from remote.client import check_modal_credentials

            check_modal_credentials()
        load_split(data_dir)  # fail at once, before any Prefect start-up
        _check_hub(push_dataset, profile)
    except MotionCoachError as exc:
        raise _fail(exc) from None
    from flows.finetune import finetune

    _run(
        lambda: finetune(
            data_dir=data_dir,
            adapter_dir=adapter_dir,
            profile=profile,
            gate=gate,
            push_dataset=push_dataset,
            max_download_mb=max_download_mb,
            benchmark=benchmark,
            benchmark_teacher=benchmark_teacher,
        )  # fmt: skip
    )


use.register(app)  # coach, serve and merge: using the trained model
app.command()(audit)  # people judge the teacher's labels
app.command()(benchmark)  # people's benchmarks for teacher, base and student


def main() -> None:
    apply_local_defaults()  # before Prefect is imported: it reads its settings once
    app()


if __name__ == "__main__":
    main()
