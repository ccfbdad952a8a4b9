"""Scoring base, student and teacher on one suite: the same items, asked as each is served.

The base and the student answer through the serving backends (`motioncoach.serving`): the student as
the release is served (PEFT on its base here, the merged weights in vLLM on Modal), the base with the
adapter switched off in the same loaded model, as the evaluation asks it. Form items are coached over
the pose the dataset's filter detects; a photo the filter would not keep gets no verdict from anyone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import Field

from motioncoach.benchmarks.metrics import BenchmarkReport, ItemAnswer, score_model
from motioncoach.benchmarks.questions import MCQ_SYSTEM, form_verdict, mcq_question, mcq_schema, read_choice
from motioncoach.benchmarks.suite import BenchmarkItem, Suite
from motioncoach.benchmarks.teacher import TeacherPass, ask_teacher
from motioncoach.config import LabelConfig, PoseFilterConfig, StepConfig
from motioncoach.errors import LabelError
from motioncoach.labels.rules import RulesLabeler
from motioncoach.pose.weights import resolve_weights
from motioncoach.records import PoseSample
from motioncoach.serving.answer import answer_prompts
from motioncoach.serving.backends import Backend
from motioncoach.serving.coach import CoachRequest, detect
from motioncoach.serving.photo import PhotoError, read_photo
from motioncoach.serving.prompt import Prompt, student_prompt
from motioncoach.teachers.base import TeacherRequest
from motioncoach.teachers.request import build_request, encode_image
from motioncoach.teachers.store import STORE_FILE
from motioncoach.teachers.validate import InvalidAnswer, parse_answer

log = logging.getLogger(__name__)

ANSWERS_FILE = STORE_FILE  # the data dir's label store keeps every answer a teacher was paid for


class BenchmarkSettings(StepConfig):
    """How the models are asked."""

    max_new_tokens: int = Field(1024, gt=0, description="Tokens each answer may use (a full label is ~600).")
    batch_size: int = Field(8, gt=0, description="Prompts per model call.")
    max_pixels: int = Field(1003520, gt=0, description="Photos are shown as in training: at most this many pixels.")
    pose_weights: str = Field("yolo11n-pose.pt", description="The pose model the dataset was filtered with.")


def detect_items(suite: Suite, weights: str) -> dict[str, PoseSample | str]:
    """The pose of every form item's photo, or why the coach would abstain on it."""
    pose = PoseFilterConfig(weights=weights)
    resolved = resolve_weights(pose.weights)
    found: dict[str, PoseSample | str] = {}
    form = [item for item in suite.items if item.kind == "form_ok"]
    for start in range(0, len(form), pose.batch_size):
        chunk, requests = form[start : start + pose.batch_size], []
        for item in chunk:
            path = suite.image_path(item)
            try:
                requests.append(CoachRequest(photo=read_photo(path.read_bytes(), str(path)), activity=item.activity))
            except (PhotoError, OSError) as exc:
                found[item.id] = f"the photo cannot be read: {exc}"
        readable = [item for item in chunk if item.id not in found]
        for item, result in zip(readable, detect(requests, pose, resolved), strict=True):
            found[item.id] = result
    return found


def answer_with_model(
    suite: Suite,
    backend: Backend,
    poses: Mapping[str, PoseSample | str],
    settings: BenchmarkSettings,
    progress: Callable[[int], None] | None = None,
) -> dict[str, ItemAnswer]:
    """One model's answer to every item, through the serving path."""
    answers: dict[str, ItemAnswer] = {}
    mcq = [item for item in suite.items if item.kind == "mcq"]
    for start in range(0, len(mcq), settings.batch_size):
        chunk = mcq[start : start + settings.batch_size]
        prompts = [
            Prompt(key=item.id, system=MCQ_SYSTEM, user=mcq_question(item), image=suite.image_path(item),
                   max_pixels=settings.max_pixels)
            for item in chunk
        ]  # fmt: skip
        for item, text in zip(chunk, backend.generate(prompts), strict=True):
            answers[item.id] = _mcq_answer(item, text)
        if progress:
            progress(len(chunk))
    form = [item for item in suite.items if item.kind == "form_ok"]
    for item in form:
        if isinstance(poses.get(item.id), str):
            answers[item.id] = ItemAnswer(item=item.id, kind="form_ok", verdict="none", correct=False,
                                          problem=str(poses[item.id]))  # fmt: skip
    coached = [item for item in form if isinstance(poses.get(item.id), PoseSample)]
    for start in range(0, len(coached), settings.batch_size):
        chunk = coached[start : start + settings.batch_size]
        samples = [poses[item.id] for item in chunk]
        prompts = [
            student_prompt(sample, suite.image_path(item), item.id, settings.max_pixels)
            for item, sample in zip(chunk, samples, strict=True)
        ]
        for item, answer in zip(chunk, answer_prompts(backend, prompts, samples), strict=True):
            answers[item.id] = _form_answer(item, answer.text, answer.label, answer.problem)
        if progress:
            progress(len(chunk))
    return answers


def _mcq_answer(item: BenchmarkItem, text: str) -> ItemAnswer:
    choice = read_choice(text, len(item.choices or []))
    problem = None if choice is not None else f"names no option 1-{len(item.choices or [])}"
    return ItemAnswer(
        item=item.id, kind="mcq", text=text, choice=choice, correct=choice == item.answer, problem=problem
    )


def _form_answer(item: BenchmarkItem, text: str, label, problem: str | None) -> ItemAnswer:
    verdict = form_verdict(label)
    correct = verdict != "none" and (verdict == "ok") == bool(item.form_ok)
    if verdict == "none" and problem is None and label is not None:
        problem = f"abstains: {label.error_message}"
    return ItemAnswer(item=item.id, kind="form_ok", text=text, verdict=verdict, correct=correct, problem=problem)


def teacher_questions(suite: Suite, poses: Mapping[str, PoseSample | str]) -> dict[str, TeacherRequest]:
    """What a paid teacher is asked: the multiple-choice question, or its labeling request over the pose."""
    questions = {}
    for item in suite.items:
        if item.kind == "mcq":
            questions[item.id] = TeacherRequest(
                sha256=item.id, image_jpeg=encode_image(suite.image_path(item)), system=MCQ_SYSTEM,
                prompt=mcq_question(item), response_schema=mcq_schema(len(item.choices or [])),
            )  # fmt: skip
        elif isinstance(poses.get(item.id), PoseSample):
            questions[item.id] = build_request(poses[item.id])
    return questions


def answer_with_teacher(
    suite: Suite, teacher_name: str, config: LabelConfig, store_path: Path, poses: Mapping[str, PoseSample | str]
) -> tuple[dict[str, ItemAnswer], TeacherPass]:
    """The teacher's answer to every item it can be asked, each request paid at most once."""
    from motioncoach.teachers.labeling import build_teacher

    questions = teacher_questions(suite, poses)
    result = ask_teacher(build_teacher(teacher_name, config), questions, store_path, config)
    answers: dict[str, ItemAnswer] = {}
    for item in suite.items:
        answer = result.answers.get(item.id)
        if item.kind == "mcq":
            answers[item.id] = (
                _mcq_answer(item, "" if answer.unusable else answer.text)
                if answer is not None
                else ItemAnswer(item=item.id, kind="mcq", problem=result.problems.get(item.id, "not asked"))
            )
            continue
        pose = poses.get(item.id)
        if not isinstance(pose, PoseSample) or answer is None:
            why = pose if isinstance(pose, str) else result.problems.get(item.id, "not asked")
            answers[item.id] = ItemAnswer(item=item.id, kind="form_ok", verdict="none", correct=False, problem=why)
            continue
        try:
            label, problem = (None, answer.unusable) if answer.unusable else (parse_answer(answer.text, pose), None)
        except InvalidAnswer as exc:
            label, problem = None, str(exc)
        answers[item.id] = _form_answer(item, answer.text, label, problem)
    return answers, result


RULES_KINDS = {"form_ok"}  # what the rules labeler can answer


def answer_with_rules(suite: Suite, poses: Mapping[str, PoseSample | str]) -> dict[str, ItemAnswer]:
    """The offline rules labeler as the teacher: it coaches form items and answers no multiple choice
    (score it with kinds={"teacher": RULES_KINDS})."""
    labeler, answers = RulesLabeler(), {}
    for item in suite.items:
        if item.kind != "form_ok":
            continue
        pose = poses.get(item.id)
        label, problem = None, pose if isinstance(pose, str) else None
        if isinstance(pose, PoseSample):
            try:
                label = labeler.label(pose)
            except LabelError as exc:
                problem = str(exc)
        answers[item.id] = _form_answer(item, label.to_json() if label else "", label, problem)
    return answers


def benchmark_report(
    suite: Suite,
    answers: Mapping[str, Mapping[str, ItemAnswer]],
    *,
    kinds: Mapping[str, set[str]] | None = None,
    served_as: Mapping[str, str] | None = None,
    teacher: TeacherPass | None = None,
) -> BenchmarkReport:
    """Every model's scores on the suite; kinds limits a model to the kinds of item it can answer (the
    rules labeler answers no multiple choice: its mcq metrics are null, not zero)."""
    every = {"mcq", "form_ok"}
    models = {
        name: score_model([i for i in suite.items if i.kind in (kinds or {}).get(name, every)], dict(given))
        for name, given in answers.items()
    }
    return BenchmarkReport(
        suite=suite.name,
        source=suite.info.source,
        license=suite.info.license,
        items=len(suite.items),
        counts=suite.counts(),
        models=models,
        served_as=dict(served_as or {}),
        teacher_cost_usd=round(teacher.answers_cost_usd, 6) if teacher else 0.0,
        teacher_spent_usd=round(teacher.cost_usd, 6) if teacher else 0.0,
        teacher_requests=teacher.requests if teacher else 0,
        not_asked=teacher.not_asked if teacher else 0,
        stop_reason=teacher.stop_reason if teacher else None,
        faulty=[item.id for item in suite.items if item.form_ok is False],
        answers={name: list(given.values()) for name, given in answers.items()},
    )
