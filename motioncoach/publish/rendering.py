"""Rendering release records as markdown: the lineage record (the Prefect artifact and the heart of the
model card), and the formats every card shares."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from motioncoach.publish.hub import HubStatus
    from motioncoach.publish.lineage import Lineage

# TrainConfig fields shown in the card, in this order.
CARD_SETTINGS = (
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "freeze_vit",
    "freeze_aligner",
    "num_train_epochs",
    "max_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_ratio",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "nproc_per_node",
    "torch_dtype",
    "max_length",
    "max_pixels",
    "seed",
)


def fmt(value: float | None) -> str:
    """How every metric is printed: three decimals, or n/a."""
    return "n/a" if value is None else f"{value:.3f}"


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def hub_line(status: HubStatus) -> str:
    if status.status == "uploaded":
        return f"uploaded to [{status.repo_id}]({status.repo_url}) (commit `{(status.commit or '')[:12]}`)"
    if status.status == "pending":
        return f"[{status.repo_id}]({status.repo_url}) (this card's repository)"
    return f"{status.status}: {status.reason}"


def render_lineage_markdown(lineage: Lineage) -> str:
    """The lineage record as markdown: evaluation, training, dataset, release."""
    import jinja2

    settings = lineage.training.config
    rows = [(key, settings[key]) for key in CARD_SETTINGS if key in settings]
    return jinja2.Template(template("lineage.md"), keep_trailing_newline=True).render(
        lineage=lineage,
        fmt=fmt,
        pct=pct,
        hub_line=hub_line,
        training_rows=rows,
        adapter_name=Path(lineage.adapter_dir).name,
    )


@cache
def template(name: str) -> str:
    return files("motioncoach.publish").joinpath("templates", name).read_text()
