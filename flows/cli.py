"""The `motioncoach` command: each subcommand runs one Prefect flow.

Without PREFECT_API_URL the flows run against a temporary local Prefect server; with it, against
that server, where the runs show up in the UI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from motioncoach.config import Profile
from motioncoach.errors import MotionCoachError
from motioncoach.runtime import apply_local_defaults

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Distil a coaching dataset and fine-tune Qwen3-VL.")

ProfileOption = Annotated[Profile, typer.Option(help="Where heavy steps run: local (this machine) or modal.")]
SourceOption = Annotated[
    str, typer.Option(help="'samples' (offline photos), 'kaggle', or a folder with one sub-folder per activity.")
]
LabelerOption = Annotated[str, typer.Option(help="Who writes the coaching labels: 'rules' (offline).")]
DataDirOption = Annotated[Path, typer.Option(help="Where images, caches, labels and the dataset live.")]
AdapterDirOption = Annotated[Path, typer.Option(help="Where the trained LoRA adapter is placed.")]
MaxSamplesOption = Annotated[int, typer.Option(min=1, help="Images to use, spread evenly over activities.")]


def _run(flow_call) -> None:
    try:
        flow_call()
    except MotionCoachError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


@app.command()
def run(
    profile: ProfileOption = Profile.local,
    source: SourceOption = "samples",
    labeler: LabelerOption = "rules",
    data_dir: DataDirOption = Path("./data"),
    adapter_dir: AdapterDirOption = Path("./lora-adapter"),
    max_samples: MaxSamplesOption = 2500,
    skip_train: Annotated[bool, typer.Option(help="Stop after the dataset is split.")] = False,
) -> None:
    """The whole pipeline: dataset, then training, then the adapter."""
    from flows.pipeline import pipeline

    _run(
        lambda: pipeline(
            source=source,
            labeler=labeler,
            data_dir=data_dir,
            adapter_dir=adapter_dir,
            max_samples=max_samples,
            skip_train=skip_train,
            profile=profile,
        )
    )


@app.command()
def dataset(
    profile: ProfileOption = Profile.local,
    source: SourceOption = "samples",
    labeler: LabelerOption = "rules",
    data_dir: DataDirOption = Path("./data"),
    max_samples: MaxSamplesOption = 2500,
) -> None:
    """Download, filter, label and split: writes pose_dataset.jsonl and splits/."""
    from flows.dataset import build_dataset

    _run(
        lambda: build_dataset(
            source=source, labeler=labeler, data_dir=data_dir, max_samples=max_samples, profile=profile
        )
    )


@app.command()
def train(
    profile: ProfileOption = Profile.local,
    data_dir: DataDirOption = Path("./data"),
    adapter_dir: AdapterDirOption = Path("./lora-adapter"),
) -> None:
    """Train on the dataset already in --data-dir and place the adapter."""
    from motioncoach.dataset import load_split

    try:
        load_split(data_dir)  # fail at once, before any Prefect start-up
    except MotionCoachError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    from flows.finetune import finetune

    _run(lambda: finetune(data_dir=data_dir, adapter_dir=adapter_dir, profile=profile))


def main() -> None:
    apply_local_defaults()  # before Prefect is imported: it reads its settings once
    app()


if __name__ == "__main__":
    main()
