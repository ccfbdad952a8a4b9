"""Evaluate a fine-tuned model on the validation split: the base model, the fine-tuned model and the rules
labeler, each asked through the serving path (motioncoach.serving.answer_prompts, what `coach`, `serve`
and the Modal endpoint call) and scored against the teacher's labels.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from motioncoach.dataset.rows import write_jsonl
from motioncoach.errors import LabelError
from motioncoach.evaluation.answers import AnswerLog
from motioncoach.evaluation.config import EvalConfig
from motioncoach.evaluation.items import EvalItem, load_items
from motioncoach.evaluation.report import ANSWERS_FILE, EVAL_FILE, MODEL_ORDER, EvalReport, RowResult, display_path
from motioncoach.evaluation.score import score_answer, summarize
from motioncoach.labels.rules import RulesLabeler
from motioncoach.serving.answer import answer_prompts
from motioncoach.serving.backends import Backend
from motioncoach.serving.prompt import Prompt

log = logging.getLogger(__name__)

Generate = Callable[[list[Prompt]], list[str]]  # a scripted model: prompts in, one text each out


class RulesBackend:
    """The offline rules labeler as a model: its label for each row's pose, or '' when it has none."""

    name = "rules"

    def __init__(self, items: Sequence[EvalItem], keypoint_conf: float = 0.3):
        self.samples = {item.key: item.sample for item in items}
        self.labeler = RulesLabeler(keypoint_conf)

    def generate(self, prompts: Sequence[Prompt]) -> list[str]:
        answers = []
        for prompt in prompts:
            try:
                answers.append(self.labeler.label(self.samples[prompt.key]).to_json())
            except LabelError:
                answers.append("")
        return answers


class ScriptedBackend:
    """A plain function of the prompts as a backend (a model stand-in, or a fixed set of answers)."""

    def __init__(self, name: str, generate: Generate):
        self.name, self._generate = name, generate

    def generate(self, prompts: Sequence[Prompt]) -> list[str]:
        return list(self._generate(list(prompts)))


def rules_generator(items: Sequence[EvalItem], keypoint_conf: float = 0.3) -> Backend:
    return RulesBackend(items, keypoint_conf)


def answer_all(
    items: Sequence[EvalItem],
    model: str,
    backend: Backend | Generate,
    config: EvalConfig,
    answers: AnswerLog | None = None,
    on_answers: Callable[[], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Every row's answer from one model (row key -> text), asked in chunks of config.batch_size through the
    serving path; with an AnswerLog, the rows answered before are not asked again and each chunk is kept."""
    backend = backend if hasattr(backend, "generate") else ScriptedBackend(model, backend)
    known = dict(answers.known(model)) if answers else {}
    pending = [item for item in items if item.key not in known]
    if progress and len(items) > len(pending):
        progress(len(items) - len(pending))
    for start in range(0, len(pending), config.batch_size):
        chunk = pending[start : start + config.batch_size]
        asked = answer_prompts(backend, [i.prompt(config.max_pixels) for i in chunk], [i.sample for i in chunk])
        texts = {answer.key: answer.text for answer in asked}
        known |= texts
        if answers is not None:
            answers.add(model, texts)
            if on_answers:
                on_answers()
        if progress:
            progress(len(chunk))
    return known


def score_items(
    items: Sequence[EvalItem],
    texts: Mapping[str, Mapping[str, str]],
    config: EvalConfig,
    *,
    base_model: str = "",
    adapter: str = "",
    served_as: str = "",
    val_rows: int | None = None,
    skipped: Sequence[str] = (),
) -> EvalReport:
    """Score each model's answer to each row against the teacher's label."""
    names = sorted(texts, key=lambda n: (MODEL_ORDER.index(n) if n in MODEL_ORDER else len(MODEL_ORDER), n))
    rows = [
        RowResult(
            key=item.key,
            image=item.image,
            sample=item.sample,
            teacher=item.teacher.to_json(),
            answers={name: texts[name][item.key] for name in names},
            scores={
                name: score_answer(texts[name][item.key], item.teacher, item.sample, config.keypoint_conf)
                for name in names
            },
        )
        for item in items
    ]
    return EvalReport(
        base_model=base_model,
        adapter=adapter,
        served_as=served_as,
        config=config,
        val_rows=len(items) + len(skipped) if val_rows is None else val_rows,
        skipped=list(skipped),
        models=[summarize(name, [row.scores[name] for row in rows]) for name in names],
        rows=rows,
    )


def evaluate_items(
    items: Sequence[EvalItem],
    models: Mapping[str, Backend | Generate],
    config: EvalConfig,
    *,
    base_model: str = "",
    adapter: str = "",
    served_as: str = "",
    val_rows: int | None = None,
    skipped: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    answers: AnswerLog | None = None,
    on_answers: Callable[[], None] | None = None,
) -> EvalReport:
    """Ask every model every row (each through the serving path) and score the answers."""
    total, done = len(items) * len(models), 0

    def step(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    texts = {name: answer_all(items, name, model, config, answers, on_answers, step) for name, model in models.items()}
    return score_items(
        items, texts, config, base_model=base_model, adapter=adapter, served_as=served_as, val_rows=val_rows,
        skipped=skipped,
    )  # fmt: skip


def evaluate_adapter(
    base_model: str | Path,
    adapter_dir: Path,
    val_path: Path,
    data_dir: Path,
    config: EvalConfig,
    models: Mapping[str, Backend | Generate] | None = None,
    progress: Callable[[int, int], None] | None = None,
    answers: AnswerLog | None = None,
) -> EvalReport:
    """Base, adapter (PEFT on the base, in transformers) and rules on the validation split."""
    from motioncoach.serving.served import served_models

    items, skipped = load_items(val_path, data_dir, config.max_rows)
    for reason in skipped:
        log.warning("validation %s: not evaluated", reason)
    if models is None:  # one loaded model: the base answers with the adapter switched off, as it is served
        served = served_models(
            str(base_model), Path(adapter_dir), None, "transformers", max_new_tokens=config.max_new_tokens,
            batch_size=config.batch_size,
        )  # fmt: skip
        models = {s.role: s.backend for s in served}
    models = {**models, "rules": RulesBackend(items, config.keypoint_conf)}
    return evaluate_items(
        items,
        models,
        config,
        base_model=display_path(base_model, data_dir),
        adapter=display_path(adapter_dir, data_dir),
        served_as="the base model with the LoRA adapter applied by PEFT, in transformers",
        skipped=skipped,
        progress=progress,
        answers=answers,
    )


def write_eval_files(report: EvalReport, dest_dir: Path, gate=None) -> Path:
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
