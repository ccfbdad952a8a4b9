"""Evaluate an adapter on the validation split: base model, adapter and the rules labeler, each
scored against the teacher's labels. `run_evaluation` is the plain entry a Modal function calls.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from motioncoach.dataset.rows import write_jsonl
from motioncoach.errors import LabelError
from motioncoach.evaluation.config import EvalConfig
from motioncoach.evaluation.generate import Generate, Prompt, load_generators
from motioncoach.evaluation.items import EvalItem, load_items
from motioncoach.evaluation.score import AnswerScore, ModelMetrics, score_answer, summarize
from motioncoach.labels.rules import RulesLabeler
from motioncoach.records import PoseSample

log = logging.getLogger(__name__)

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
    config: EvalConfig
    val_rows: int = Field(description="Rows in the validation split (or the first max_rows of them).")
    skipped: list[str] = Field(default_factory=list, description="Rows that could not be evaluated, with why.")
    models: list[ModelMetrics] = Field(description="One entry per model: base, adapter, rules.")
    rows: list[RowResult]

    def metrics(self, model: str) -> ModelMetrics:
        return next(m for m in self.models if m.model == model)

    def summary(self) -> dict:
        """What eval.json holds: everything but the per-row answers."""
        return self.model_dump(mode="json", exclude={"rows"})

    def table(self) -> list[dict]:
        """One row per model, for a table artifact or a card."""
        return [m.model_dump() for m in self.models]


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


def rules_generator(items: Sequence[EvalItem], keypoint_conf: float = 0.3) -> Generate:
    """The offline rules labeler as a 'model': its label for each row's pose, or '' when it has none."""
    samples = {item.key: item.sample for item in items}
    labeler = RulesLabeler(keypoint_conf)

    def generate(prompts: list[Prompt]) -> list[str]:
        answers = []
        for prompt in prompts:
            try:
                answers.append(labeler.label(samples[prompt.key]).to_json())
            except LabelError:
                answers.append("")
        return answers

    return generate


def evaluate_items(
    items: Sequence[EvalItem],
    generators: Mapping[str, Generate],
    config: EvalConfig,
    *,
    base_model: str = "",
    adapter: str = "",
    val_rows: int | None = None,
    skipped: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Ask each generator every prompt, in batches, and score each answer against the teacher."""
    prompts = [Prompt(key=i.key, system=i.system, user=i.user, image=i.image) for i in items]
    names = sorted(generators, key=lambda n: (MODEL_ORDER.index(n) if n in MODEL_ORDER else len(MODEL_ORDER), n))
    answers: dict[str, list[str]] = {name: [] for name in names}
    total, done = len(prompts) * len(names), 0
    for name in names:
        for start in range(0, len(prompts), config.batch_size):
            batch = prompts[start : start + config.batch_size]
            texts = list(generators[name](batch))
            if len(texts) != len(batch):
                raise ValueError(f"generator {name!r} answered {len(texts)} of {len(batch)} prompts")
            answers[name] += texts
            done += len(batch)
            if progress:
                progress(done, total)
    rows = [
        RowResult(
            key=item.key,
            image=item.image,
            sample=item.sample,
            teacher=item.teacher.to_json(),
            answers={name: answers[name][i] for name in names},
            scores={
                name: score_answer(answers[name][i], item.teacher, item.sample, config.keypoint_conf) for name in names
            },
        )
        for i, item in enumerate(items)
    ]
    return EvalReport(
        base_model=base_model,
        adapter=adapter,
        config=config,
        val_rows=len(items) + len(skipped) if val_rows is None else val_rows,
        skipped=list(skipped),
        models=[summarize(name, [row.scores[name] for row in rows]) for name in names],
        rows=rows,
    )


def evaluate_adapter(
    base_model: str | Path,
    adapter_dir: Path,
    val_path: Path,
    data_dir: Path,
    config: EvalConfig,
    generators: Mapping[str, Generate] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Base, adapter and rules on the validation split; generators default to the real models."""
    items, skipped = load_items(val_path, data_dir, config.max_rows)
    for reason in skipped:
        log.warning("validation %s: not evaluated", reason)
    if generators is None:
        generators = load_generators(
            base_model,
            adapter_dir,
            max_new_tokens=config.max_new_tokens,
            batch_size=config.batch_size,
            max_pixels=config.max_pixels,
        )
    generators = {**generators, "rules": rules_generator(items, config.keypoint_conf)}
    return evaluate_items(
        items,
        generators,
        config,
        base_model=display_path(base_model, data_dir),
        adapter=display_path(adapter_dir, data_dir),
        skipped=skipped,
        progress=progress,
    )


def write_eval_files(report: EvalReport, dest_dir: Path, gate: BaseModel | None = None) -> Path:
    """eval.json (one entry per model, and the gate's verdict with its intervals) and eval_answers.jsonl
    (every answer and its score) in dest_dir."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / EVAL_FILE
    summary = report.summary() | ({"gate": gate.model_dump(mode="json")} if gate is not None else {})
    path.write_text(json.dumps(summary, indent=2) + "\n")
    write_jsonl(
        (
            {
                "image": row.key,
                "teacher": row.teacher,
                "answers": row.answers,
                "scores": row.model_dump(mode="json")["scores"],
            }
            for row in report.rows
        ),
        dest_dir / ANSWERS_FILE,
        may_empty=True,  # this run's answers, not data
    )
    return path


def run_evaluation(request: dict) -> dict:
    """Plain entry for a remote worker (Modal): a JSON-able request in, eval.json's content out.

    request: {"base_model": id or dir, "adapter_dir": dir, "data_dir": dir, "val_path": file (relative
    paths are taken inside data_dir), "config": EvalConfig fields, "out_dir": where eval.json,
    eval_answers.jsonl and gallery/ go}. Returns the whole EvalReport as JSON
    (EvalReport.model_validate() reads it back).
    """
    from motioncoach.evaluation.gallery import GALLERY_DIR, draw_gallery

    data_dir = Path(request["data_dir"])
    report = evaluate_adapter(
        request["base_model"],
        Path(request["adapter_dir"]),
        data_dir / request["val_path"],  # an absolute val_path stays as it is
        data_dir,
        EvalConfig.model_validate(request.get("config") or {}),
    )
    out_dir = Path(request["out_dir"])
    write_eval_files(report, out_dir)
    draw_gallery(report, out_dir / GALLERY_DIR, report.config.gallery_images)
    return report.model_dump(mode="json")
