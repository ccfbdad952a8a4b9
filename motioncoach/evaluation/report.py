"""What an evaluation found: each validation row's answers and scores, and every model's metrics."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from motioncoach.evaluation.config import EvalConfig
from motioncoach.evaluation.score import AnswerScore, ModelMetrics
from motioncoach.records import PoseSample

EVAL_FILE = "eval.json"
ANSWERS_FILE = "eval_answers.jsonl"
MODEL_ORDER = ("base", "adapter", "rules")


class RowResult(BaseModel):
    """One validation row: what each model answered and how that scored."""

    key: str
    image: Path
    sample: PoseSample
    teacher: str = Field(description="The teacher's label, as JSON.")
    answers: dict[str, str]
    scores: dict[str, AnswerScore]


class EvalReport(BaseModel):
    """Every model's metrics on the validation split, and the answers behind them."""

    base_model: str
    adapter: str
    served_as: str = Field(
        "", description="Which weights and engine answered as the fine-tuned model (as the release is served)."
    )
    config: EvalConfig
    val_rows: int = Field(description="Rows in the validation split (or the first max_rows of them).")
    skipped: list[str] = Field(default_factory=list, description="Rows that could not be evaluated, with why.")
    models: list[ModelMetrics] = Field(description="One entry per model: base, adapter, rules.")
    people: list[ModelMetrics] = Field(
        default_factory=list,
        description="Each model on the human-verified subset: the validation rows whose label people approved in "
        "the audit (agreement with people, beside agreement with the teacher).",
    )
    audit: dict | None = Field(None, description="What the audit found of the labels (motioncoach.audit.AuditSummary).")
    rows: list[RowResult]

    def metrics(self, model: str) -> ModelMetrics:
        return next(m for m in self.models if m.model == model)

    def summary(self) -> dict:
        """What eval.json holds: everything but the per-row answers."""
        return self.model_dump(mode="json", exclude={"rows"})

    def table(self) -> list[dict]:
        """One row per model (and per model on the human-verified subset), for a table artifact or a card."""
        teacher = [{"scored_against": "teacher", **m.model_dump()} for m in self.models]
        return teacher + [{"scored_against": "people", **m.model_dump()} for m in self.people]


def display_path(path: str | Path, data_dir: Path) -> str:
    """A path inside the data dir as '<data-dir>/...', so records and cards name no local directory.

    Anything that is not an existing path (a Hub model id) is returned as it is.
    """
    if not Path(path).exists():
        return str(path)
    try:
        return f"<data-dir>/{Path(path).resolve().relative_to(Path(data_dir).resolve())}"
    except ValueError:
        return str(path)
