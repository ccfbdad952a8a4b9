"""From the model's text to the app's AnalysisResponse, through the checks every teacher label passes.

This is the one function the evaluation, the `coach` command, the HTTP server and the Modal endpoint all
call to ask the student and read what it said.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from motioncoach.labels.response import AnalysisResponse, error_response, response_from_label
from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample
from motioncoach.serving.backends import Backend
from motioncoach.serving.prompt import Prompt
from motioncoach.teachers.validate import InvalidAnswer, parse_answer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """The model's text for one prompt, the label it makes when it passes the checks, and the response."""

    key: str
    text: str  # the raw generation: logged, never sent to the app
    label: CoachingLabel | None
    problem: str | None  # why the text is no usable label
    response: AnalysisResponse


def read_answer(key: str, text: str, sample: PoseSample) -> Answer:
    """Parse, validate and ground the text exactly as a teacher's answer is checked."""
    try:
        label = parse_answer(text, sample)
    except InvalidAnswer as exc:
        log.info("answer for %s is unusable (%s); the model said: %r", key, exc, text[:2000])
        reason = f"The model's answer could not be used: {exc}"
        return Answer(key=key, text=text, label=None, problem=str(exc), response=error_response(reason))
    return Answer(key=key, text=text, label=label, problem=None, response=response_from_label(label))


def answer_prompts(backend: Backend, prompts: Sequence[Prompt], samples: Sequence[PoseSample]) -> list[Answer]:
    """Ask the backend every prompt (it batches them) and read each answer against its detected pose."""
    if len(prompts) != len(samples):
        raise ValueError(f"{len(prompts)} prompts but {len(samples)} poses")
    texts = backend.generate(prompts)
    if len(texts) != len(prompts):
        raise ValueError(f"{backend.name} answered {len(texts)} of {len(prompts)} prompts")
    return [read_answer(p.key, text, sample) for p, text, sample in zip(prompts, texts, samples, strict=True)]
