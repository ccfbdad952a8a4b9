"""What the labeling step produces for each kept image: a label, or the reason there is none."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from motioncoach.errors import LabelError
from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample


class Labeler(Protocol):
    """Writes one coaching label for one kept pose, or raises LabelError saying why not."""

    name: str
    model_id: str

    def label(self, sample: PoseSample) -> CoachingLabel: ...


class LabelOutcome(BaseModel):
    """One image's labeling result.

    labeled: label set, used for training. failed: reason set. deferred: left for a later run
    (budget spent, batch still running). disagreed: the consensus teachers disagree (label set,
    reason says how); excluded from training unless asked for. rejected: people rejected the label
    in an audit (label set, reason says who and why); never trained or validated on.
    """

    sample: PoseSample
    labeler: str
    model_id: str
    status: Literal["labeled", "failed", "deferred", "disagreed", "rejected"]
    label: CoachingLabel | None = None
    reason: str | None = None
    agreement: dict | None = None


class LabelReport(BaseModel):
    outcomes: list[LabelOutcome]
    usage: list[dict] = Field(default_factory=list, description="Per teacher: requests, tokens, cost, stop reason.")

    def having(self, status: str) -> list[LabelOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def labeled(self) -> list[LabelOutcome]:
        return self.having("labeled")

    @property
    def failed(self) -> list[LabelOutcome]:
        return self.having("failed")

    def pending_message(self) -> str | None:
        """What keeps images without a label for now (a batch still running, a spent budget), or None."""
        deferred = self.having("deferred")
        if not deferred:
            return None
        reasons = sorted({u["stop_reason"] for u in self.usage if u.get("stop_reason")}) or sorted(
            {o.reason or "left for a later run" for o in deferred}
        )
        return f"{len(deferred)} of {len(self.outcomes)} images have no label yet: {'; '.join(reasons)}"


def label_samples(
    samples: Sequence[PoseSample],
    labeler: Labeler,
    progress: Callable[[int, int], None] | None = None,
) -> LabelReport:
    """Label every sample; an image that cannot be labeled is recorded with its reason."""
    outcomes = []
    for done, sample in enumerate(samples, start=1):
        meta = {"sample": sample, "labeler": labeler.name, "model_id": labeler.model_id}
        try:
            outcomes.append(LabelOutcome(**meta, status="labeled", label=labeler.label(sample)))
        except LabelError as exc:
            outcomes.append(LabelOutcome(**meta, status="failed", reason=str(exc)))
        if progress:
            progress(done, len(samples))
    return LabelReport(outcomes=outcomes)
