"""A price before spending: what labeling these images would ask and cost, from the store and the requests' real
sizes, sending nothing. The rebuy guard is its other use: a run that would pay again for much of what the store
holds, because what is asked changed, stops first and says how much."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from motioncoach.config import LabelConfig
from motioncoach.errors import ConfigurationError
from motioncoach.prompts import system_prompt
from motioncoach.records import PoseSample
from motioncoach.teachers.pricing import TYPICAL_OUTPUT_TOKENS, cost_usd, input_tokens, is_priced
from motioncoach.teachers.request import MAX_SIDE, label_json_schema, teacher_prompt
from motioncoach.teachers.store import STORE_FILE, LabelKey, LabelStore

REBUY_SHARE = 0.05  # buying again more than this share of the labels the store holds needs --rebuy


def sent_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The photo's size as a request sends it (downscaled to max_side, never up), without encoding it."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def sample_input_tokens(model_id: str, sample: PoseSample) -> int:
    """The input tokens of the request a sample would be sent as: the estimator, from its real size."""
    width, height = sent_size(sample.width, sample.height)
    schema = json.dumps(label_json_schema())
    return input_tokens(model_id, width, height, system_prompt(), teacher_prompt(sample), schema)


def output_tokens(store: LabelStore, model_id: str) -> int:
    """The answers' tokens this model has been billed for on average, or a typical answer before any."""
    seen = store.average_output_tokens(model_id)
    return round(seen) if seen else TYPICAL_OUTPUT_TOKENS


class TeacherEstimate(BaseModel):
    """What one teacher would be asked, and what it would cost."""

    teacher: str
    model_id: str
    images: int
    from_store: int
    to_ask: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None for a paid model without a price
    batch_cost_usd: float | None
    asked: list[PoseSample] = Field(default_factory=list, exclude=True, description="The images it would ask.")

    def line(self) -> str:
        cost = "an unknown cost (no price: --price)" if self.cost_usd is None else f"about ${self.cost_usd:.2f}"
        batch = f" (${self.batch_cost_usd:.2f} with --batch)" if self.batch_cost_usd is not None else ""
        return (
            f"{self.teacher} ({self.model_id}): {self.to_ask} of {self.images} images to label ({self.from_store} "
            f"answered by the store): {self.to_ask} requests, about {self.input_tokens / 1e6:.2f} M input and "
            f"{self.output_tokens / 1e6:.2f} M output tokens, {cost}{batch}"
        )


def _asks(samples: Sequence[PoseSample], teacher, store: LabelStore, config: LabelConfig) -> list[PoseSample]:
    """The samples a run would send a request for: no label, not refused on content, asks left."""
    from motioncoach.teachers.engine import is_blocked

    asked = []
    for sample in samples:
        stored = store.get(LabelKey.of(sample, teacher.name, teacher.model_id, teacher.generation_params()))
        if stored is not None and (
            stored.status == "labeled" or is_blocked(stored.reason) or stored.asks >= config.max_asks_per_image
        ):
            continue
        asked.append(sample)
    return asked


def estimate_labeling(samples: Sequence[PoseSample], config: LabelConfig, data_dir: Path) -> list[TeacherEstimate]:
    """Each teacher's requests, tokens and cost for these samples, from the data dir's store; nothing is sent."""
    from motioncoach.teachers.keys import LABELER_TEACHERS
    from motioncoach.teachers.labeling import stored_teacher

    store = LabelStore(Path(data_dir) / STORE_FILE)
    try:
        estimates = []
        for name in LABELER_TEACHERS[config.labeler]:
            teacher = stored_teacher(name, config)
            todo = _asks(samples, teacher, store, config)
            tokens_in = sum(sample_input_tokens(teacher.model_id, s) for s in todo)
            tokens_out = output_tokens(store, teacher.model_id) * len(todo)
            priced = is_priced(teacher.model_id, config.prices)
            cost = cost_usd(teacher.model_id, tokens_in, tokens_out, config.prices) if priced else None
            batch = cost_usd(teacher.model_id, tokens_in, tokens_out, config.prices, batch=True) if priced else None
            estimates.append(TeacherEstimate(
                teacher=name, model_id=teacher.model_id, images=len(samples), from_store=len(samples) - len(todo),
                to_ask=len(todo), input_tokens=tokens_in, output_tokens=tokens_out,
                cost_usd=None if cost is None else round(cost, 4),
                batch_cost_usd=None if batch is None or name != "gemini" else round(batch, 4), asked=todo,
            ))  # fmt: skip
        return estimates
    finally:
        store.close()


def check_rebuy(samples: Sequence[PoseSample], teachers, store: LabelStore, config: LabelConfig) -> None:
    """Stop before anything is sent when more than REBUY_SHARE of the labels the store holds would be bought again
    because what is asked changed since they were (unless labeling.rebuy, --rebuy)."""
    if config.rebuy:
        return
    for teacher in teachers:
        waiting = {sha for job in store.open_batches(teacher.name) for sha in job.images}  # bought, not collected
        again = []
        for sample in samples:
            key = LabelKey.of(sample, teacher.name, teacher.model_id, teacher.generation_params())
            if sample.sha256 not in waiting and store.get(key) is None and store.has_older_label(key):
                again.append(sample)
        held = store.labeled_images(teacher.name)
        if not again or len(again) <= REBUY_SHARE * held:
            continue
        tokens = sum(sample_input_tokens(teacher.model_id, s) for s in again)
        cost = cost_usd(teacher.model_id, tokens, output_tokens(store, teacher.model_id) * len(again), config.prices)
        price = f"about ${cost:.2f}" if is_priced(teacher.model_id, config.prices) else "an unknown cost (no price)"
        raise ConfigurationError(
            f"{len(again)} of the {held} images the label store holds {teacher.name} labels for would be labeled "
            f"again, {price}, because what is asked changed since they were (the prompts, the answer schema, the "
            f"cues or the pose block, the image encoding, the model or its parameters). Nothing was sent. Add "
            f"--rebuy (labeling.rebuy) to buy them again, or undo the change; --estimate prints the cost of a run."
        )
