"""The model card, the dataset card and the lineage markdown, rendered from one Lineage record.

Templates live in templates/ beside this module; huggingface_hub's ModelCard and DatasetCard write
the YAML metadata the Hub reads (base_model, library_name, tags, license).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from motioncoach.evaluation.gallery import GALLERY_DIR
from motioncoach.prompts import system_prompt
from motioncoach.publish.config import HubConfig
from motioncoach.publish.rendering import pct, template
from motioncoach.serving.photo import processor_size
from motioncoach.serving.vllm import MAX_MODEL_LEN

if TYPE_CHECKING:
    from huggingface_hub import DatasetCard, ModelCard

    from motioncoach.publish.lineage import Lineage

CARD_FILE = "README.md"
MODEL_TAGS = ["lora", "peft", "ms-swift", "qwen3-vl", "vision-language", "pose", "coaching", "motioncoach"]
DATASET_TAGS = ["pose", "coaching", "keypoints", "distillation", "motioncoach"]
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def is_hub_id(name: str) -> bool:
    """'org/name' and not a path on this machine."""
    return bool(_HUB_ID.match(name)) and not Path(name).expanduser().exists()


def teachers_of(lineage: Lineage) -> str:
    names = [f"{s.labeler} ({s.model_id})" for s in lineage.labelers if s.labeled]
    return ", ".join(names) or "no recorded labeler"


def model_card(lineage: Lineage, config: HubConfig, gallery: list[str] | None = None) -> ModelCard:
    """The adapter's README.md: metadata for the Hub, then what it does, how to use it, how it was made."""
    from huggingface_hub import ModelCard, ModelCardData

    base = lineage.training.base_model
    hub_base = is_hub_id(base)
    repo_id = lineage.hub.repo_id if lineage.hub.status in ("pending", "uploaded") else None
    data = ModelCardData(
        base_model=base if hub_base else None,
        library_name="peft",
        pipeline_tag="image-text-to-text",
        license=config.license,
        tags=list(MODEL_TAGS),
        datasets=[lineage.dataset_hub.repo_id] if lineage.dataset_hub and lineage.dataset_hub.repo_id else None,
    )
    return ModelCard.from_template(
        data,
        template_str=template("model_card.md"),
        lineage=lineage,
        base_name=base.rsplit("/", 1)[-1] if hub_base else "a local Qwen3-VL",
        hub_base=hub_base,
        base_for_code=base if hub_base else "<the base model directory>",
        adapter_ref=repo_id or "<this adapter's directory>",
        vllm_flags=vllm_flags(lineage),
        teachers=teachers_of(lineage),
        system_prompt=system_prompt(),
        gallery=gallery or [],
        lineage_markdown=lineage.to_markdown(),
    )


def vllm_flags(lineage: Lineage) -> str:
    """`vllm serve` flags that serve the release as trained: its context, one photo a prompt, and the
    processor resizing to the training pixels (Qwen3-VL's default is 16.7 M pixels)."""
    context = lineage.serving.max_model_len if lineage.serving else MAX_MODEL_LEN
    flags = f"--max-model-len {context} --limit-mm-per-prompt '{json.dumps({'image': 1})}'"
    pixels = lineage.training.config.get("max_pixels")
    if pixels:
        flags += f" --mm-processor-kwargs '{json.dumps({'size': processor_size(int(pixels))})}'"
    return flags


def write_model_card(adapter_dir: Path, lineage: Lineage, config: HubConfig) -> Path:
    """Write adapter_dir/README.md (every run, uploaded or not), showing the PNGs in adapter_dir/gallery/."""
    adapter_dir = Path(adapter_dir)
    gallery = sorted(str(p.relative_to(adapter_dir)) for p in (adapter_dir / GALLERY_DIR).glob("*.png"))
    path = adapter_dir / CARD_FILE
    model_card(lineage, config, gallery).save(path)
    return path


def dataset_card(lineage: Lineage) -> DatasetCard:
    """The dataset repo's README.md: format, sources and terms, filter yield, labelers, agreement, cost."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        license="other",
        license_name="mixed-source-terms",
        license_link="LICENSE.md",
        pretty_name="MotionCoach coaching dataset",
        task_categories=["image-text-to-text"],
        tags=list(DATASET_TAGS),
        size_categories=[_size_category(lineage.dataset.rows)],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": "train.jsonl"}, {"split": "validation", "path": "val.jsonl"}],
            }
        ],
    )
    return DatasetCard.from_template(
        data, template_str=template("dataset_card.md"), lineage=lineage, teachers=teachers_of(lineage), pct=pct
    )


def terms_markdown(lineage: Lineage) -> str:
    """LICENSE.md of the dataset repo: each source's terms, which its photos keep."""
    lines = ["# Terms of the photos in this dataset", "", "Each photo keeps the terms of its source.", ""]
    lines += ["| source | kind | photos | license / terms |", "|---|---|---|---|"]
    lines += [f"| {s.name} | {s.kind} | {s.images} | {s.license} |" for s in lineage.sources]
    return "\n".join(lines) + "\n"


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "n>1M"
