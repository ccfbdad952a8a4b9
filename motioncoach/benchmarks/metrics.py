"""Scores on a benchmark: every model's answers against what people said, with 95% intervals.

mcq_accuracy: the share of multiple-choice items answered with the expert's comment (chance: the
mean of 1 / choices). On form items: error_recall, the share of faulty forms the model flags;
error_precision, the share of its flags that are faulty forms; says_ok_rate, the share of all form
items it calls correct (the bias published work finds: models call most movements correct).
Intervals are Wilson score intervals; a metric with no items to count is null.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, Field

from motioncoach.benchmarks.questions import Verdict
from motioncoach.benchmarks.suite import BenchmarkItem

Z95 = 1.959964


class ItemAnswer(BaseModel):
    """One model's answer to one item, as read."""

    item: str
    kind: str
    text: str = Field("", description="What the model said (a label, a number), or '' when it was not asked.")
    choice: int | None = Field(None, description="MCQ: the 0-based choice the answer names.")
    verdict: Verdict | None = Field(None, description="Form items: ok, error, or none (no verdict).")
    correct: bool | None = Field(None, description="MCQ: the expert's comment; form: the expert's verdict.")
    problem: str | None = Field(None, description="Why the answer gives no choice or verdict.")


def wilson(successes: int, trials: int) -> list[float] | None:
    """The 95% Wilson score interval of successes / trials; None without trials."""
    if not trials:
        return None
    p = successes / trials
    centre = (p + Z95**2 / (2 * trials)) / (1 + Z95**2 / trials)
    half = Z95 * math.sqrt(p * (1 - p) / trials + Z95**2 / (4 * trials**2)) / (1 + Z95**2 / trials)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def _rate(successes: int, trials: int) -> float | None:
    return round(successes / trials, 4) if trials else None


class ModelScores(BaseModel):
    """One model on one suite."""

    mcq_items: int = 0
    mcq_correct: int = 0
    mcq_accuracy: float | None = None
    mcq_interval: list[float] | None = None
    chance: float | None = Field(None, description="What guessing scores on these MCQ items.")
    form_items: int = 0
    faulty_items: int = Field(0, description="Form items an expert judged faulty.")
    flagged: int = Field(0, description="Form items the model flags an error on.")
    true_flags: int = 0
    says_ok: int = 0
    no_verdict: int = Field(0, description="Form items it abstained on or answered unusably.")
    error_recall: float | None = None
    error_recall_interval: list[float] | None = None
    error_precision: float | None = None
    error_precision_interval: list[float] | None = None
    says_ok_rate: float | None = None
    says_ok_interval: list[float] | None = None


def score_model(items: Sequence[BenchmarkItem], answers: dict[str, ItemAnswer]) -> ModelScores:
    """A model's scores from its answers (an item without an answer counts as unanswered)."""
    mcq = [i for i in items if i.kind == "mcq"]
    form = [i for i in items if i.kind == "form_ok"]
    scores = ModelScores(mcq_items=len(mcq), form_items=len(form))
    scores.mcq_correct = sum(1 for i in mcq if i.id in answers and answers[i.id].choice == i.answer)
    scores.mcq_accuracy = _rate(scores.mcq_correct, len(mcq))
    scores.mcq_interval = wilson(scores.mcq_correct, len(mcq))
    scores.chance = round(sum(1 / len(i.choices or [1]) for i in mcq) / len(mcq), 4) if mcq else None
    verdicts = {i.id: answers[i.id].verdict if i.id in answers else "none" for i in form}
    faulty = [i for i in form if i.form_ok is False]
    scores.faulty_items = len(faulty)
    scores.flagged = sum(1 for i in form if verdicts[i.id] == "error")
    scores.true_flags = sum(1 for i in faulty if verdicts[i.id] == "error")
    scores.says_ok = sum(1 for i in form if verdicts[i.id] == "ok")
    scores.no_verdict = sum(1 for i in form if verdicts[i.id] == "none")
    scores.error_recall = _rate(scores.true_flags, len(faulty))
    scores.error_recall_interval = wilson(scores.true_flags, len(faulty))
    scores.error_precision = _rate(scores.true_flags, scores.flagged)
    scores.error_precision_interval = wilson(scores.true_flags, scores.flagged)
    scores.says_ok_rate = _rate(scores.says_ok, len(form))
    scores.says_ok_interval = wilson(scores.says_ok, len(form))
    return scores


# The headline metrics and their intervals.
INTERVALS = {
    "mcq_accuracy": "mcq_interval",
    "error_recall": "error_recall_interval",
    "error_precision": "error_precision_interval",
    "says_ok_rate": "says_ok_interval",
}


class BenchmarkReport(BaseModel):
    """Every model on one suite: what `motioncoach benchmark --json` prints."""

    suite: str
    source: str = ""
    license: str = ""
    items: int
    counts: dict[str, int] = Field(default_factory=dict, description="Items by kind: mcq, form_ok.")
    models: dict[str, ModelScores]
    served_as: dict[str, str] = Field(default_factory=dict, description="What answered as each model.")
    teacher_cost_usd: float = Field(0.0, description="What the teacher's answers cost (each bought once).")
    teacher_spent_usd: float = Field(0.0, description="What this run spent on the teacher (0 on an unchanged rerun).")
    teacher_requests: int = Field(0, description="Teacher requests this run sent (0 on an unchanged rerun).")
    not_asked: int = Field(
        0, description="Teacher items left unasked (the --max-cost cap, a refusal on every request)."
    )
    stop_reason: str | None = Field(None, description="Why the teacher stopped being asked, when it did.")
    faulty: list[str] = Field(default_factory=list, description="Form items people judged faulty, by id.")
    answers: dict[str, list[ItemAnswer]] = Field(default_factory=dict, description="Per model, every answer.")

    def summary(self) -> dict:
        """The printed object: {"models": {name: {metrics}}, "items": N, "suite": ...}, answers left out."""
        return self.model_dump(mode="json", exclude={"answers", "faulty"})

    def table(self) -> list[dict]:
        """One row per model: the headline metrics with their intervals, for artifacts and cards."""
        rows = []
        for name, scores in self.models.items():
            row: dict = {"model": name, "mcq_items": scores.mcq_items, "form_items": scores.form_items}
            for metric, interval in INTERVALS.items():
                value, bounds = getattr(scores, metric), getattr(scores, interval)
                row[metric] = value
                row[f"{metric}_95"] = None if bounds is None else f"{bounds[0]:.2f}-{bounds[1]:.2f}"
            row["chance"] = scores.chance
            rows.append(row)
        return rows
