"""A release vLLM loads whole: base model and LoRA adapter folded into one Qwen3-VL, vision tower and
mergers included, with the processor and chat template beside it.

The processor is saved as training showed images: at most the run's MAX_PIXELS (Qwen3-VL's own default is
16.7 M pixels, which turns a phone photo into ~12k visual tokens, over the served context and off the training
distribution), in processor_config.json and in the preprocessor_config.json that Hub-layout readers look for.

vLLM applies a LoRA adapter to the language model only unless `enable_tower_connector_lora` is on; our
recipe trains LoRA on the vision tower and the mergers too, so plain `enable_lora` serves another model
than the one that was measured. Merged weights carry every module's training.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

from motioncoach.hashing import file_sha256
from motioncoach.serving.photo import processor_size
from motioncoach.serving.release import LINEAGE_FILE, MERGE_RECORD, recorded_max_pixels

log = logging.getLogger(__name__)

CARRIED_FILES = (LINEAGE_FILE, "eval.json")  # release records that travel with the weights
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Where a LoRA module sits in Qwen3-VL, by the part of its name: checked in this order.
REGIONS = (
    ("deepstack_mergers", ".visual.deepstack_merger_list."),
    ("merger", ".visual.merger."),
    ("vision_tower", ".visual."),
    ("language_model", ".language_model."),
)


class LoraPlacement(BaseModel):
    """How many LoRA modules an adapter holds in each part of the model, read from its tensor names."""

    language_model: int = 0
    vision_tower: int = 0
    merger: int = 0
    deepstack_mergers: int = 0
    other: int = 0

    @property
    def off_language_model(self) -> int:
        """Modules vLLM's plain enable_lora drops: the vision tower and the mergers."""
        return self.vision_tower + self.merger + self.deepstack_mergers


class MergeRecord(BaseModel):
    """What a merged directory was made from."""

    base_model: str
    adapter_sha256: str = Field(description="sha256 of the adapter's weights file.")
    placement: LoraPlacement
    max_pixels: int | None = Field(None, description="The training images' MAX_PIXELS, as the processor resizes.")


def lora_placement(adapter_dir: Path) -> LoraPlacement:
    """Count the adapter's LoRA modules per region, from the safetensors header (no tensor is loaded)."""
    from safetensors import safe_open

    modules = set()
    with safe_open(str(Path(adapter_dir) / ADAPTER_WEIGHTS), framework="pt") as weights:
        for name in weights.keys():  # noqa: SIM118 - safe_open is not a mapping
            for marker in (".lora_A.", ".lora_B.", ".lora_embedding_A", ".lora_embedding_B"):
                if marker in name:
                    modules.add(name.split(marker, 1)[0])
    counts: Counter[str] = Counter()
    for module in modules:
        counts[next((region for region, part in REGIONS if part in f".{module}."), "other")] += 1
    return LoraPlacement(**counts)


def merge_adapter(
    base_model: str, adapter_dir: Path, out_dir: Path, *, dtype: str = "auto", max_pixels: int | None = None
) -> MergeRecord:
    """Write out_dir: the base model with the adapter merged in, loadable by transformers and vLLM as a
    plain Qwen3-VL that resizes images as training did. A directory already merged from the same adapter,
    base and pixels is kept; any other is replaced (never silently reused).

    dtype: "auto" keeps the checkpoint's dtype (bf16 for Qwen3-VL), "float32" merges in full precision.
    max_pixels: the run's MAX_PIXELS (TrainConfig.max_pixels); by default the adapter folder's lineage.json.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    record = MergeRecord(
        base_model=base_model,
        adapter_sha256=file_sha256(adapter_dir / ADAPTER_WEIGHTS),
        placement=lora_placement(adapter_dir),
        max_pixels=max_pixels or _trained_pixels(adapter_dir),
    )
    if merged_from(out_dir) == record:
        log.info("%s already holds this merge; kept", out_dir)
        return record
    log.info(
        "merging %s into %s: %s LoRA modules (%d on the vision tower and mergers)",
        adapter_dir, base_model, record.placement.model_dump(), record.placement.off_language_model,
    )  # fmt: skip
    torch_dtype = torch.float32 if dtype == "float32" else "auto"
    base = AutoModelForImageTextToText.from_pretrained(base_model, dtype=torch_dtype, low_cpu_mem_usage=True)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        merged.save_pretrained(staging, safe_serialization=True, max_shard_size="5GB")
        save_processor(base_model, staging, record.max_pixels)
        for name in CARRIED_FILES:
            if (adapter_dir / name).is_file():
                shutil.copyfile(adapter_dir / name, staging / name)
        (staging / MERGE_RECORD).write_text(record.model_dump_json(indent=2) + "\n")
        staging.chmod(0o755)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            staging.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record


def save_processor(base_model: str, folder: Path, max_pixels: int) -> None:
    """The base's tokenizer, chat template and processors in folder, the image processor resizing to at most
    max_pixels as training did."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(base_model)
    processor.image_processor.size = processor_size(max_pixels)
    processor.save_pretrained(folder)  # processor_config.json (transformers 5), tokenizer, chat template
    processor.image_processor.save_pretrained(folder)  # preprocessor_config.json, as Hub releases of Qwen3-VL hold
    processor.video_processor.save_pretrained(folder)  # video_preprocessor_config.json, likewise


def _trained_pixels(adapter_dir: Path) -> int:
    """MAX_PIXELS from the adapter folder's lineage.json; the production recipe's, said in the log, without one."""
    from motioncoach.config import TrainConfig

    recorded = recorded_max_pixels([adapter_dir])
    if recorded is None:
        recorded = TrainConfig().max_pixels
        log.warning("%s records no MAX_PIXELS (no lineage.json): the processor resizes to %d", adapter_dir, recorded)
    return recorded


def merged_from(out_dir: Path) -> MergeRecord | None:
    """The record of a complete merged directory, or None."""
    try:
        return MergeRecord.model_validate(json.loads((Path(out_dir) / MERGE_RECORD).read_text()))
    except (OSError, ValueError):
        return None
