"""Asking a paid teacher a benchmark's questions, each at most once: answers kept by request, costs capped.

The requests are the labeling requests (the teacher's coaching prompt over the detected pose, for form
items) or the multiple-choice question; answers land in an AnswerStore the moment they arrive, so an
unchanged rerun sends nothing. Transient errors are retried with backoff; a request refused for good
is recorded as a problem, and the same refusal on several requests in a row stops the rest.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path

from motioncoach.config import LabelConfig
from motioncoach.teachers.answer_store import AnswerStore, request_key
from motioncoach.teachers.base import (
    BlockedAnswer,
    PermanentError,
    Teacher,
    TeacherAnswer,
    TeacherRequest,
    TransientError,
)
from motioncoach.teachers.pacing import RateLimiter, retry_delay
from motioncoach.teachers.pricing import TYPICAL_OUTPUT_TOKENS, cost_usd, estimate_input_tokens

SAME_REFUSALS_TO_STOP = 3  # the same permanent error this many times in a row: the rest would get it too


@dataclass
class TeacherPass:
    """What one pass over the questions got: an answer or a problem per question, and what it cost."""

    answers: dict[str, TeacherAnswer] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    cost_usd: float = 0.0  # spent by this pass
    answers_cost_usd: float = 0.0  # what the answers it used were bought for, whenever that was
    from_store: int = 0
    not_asked: int = 0
    stop_reason: str | None = None


async def _ask_all(teacher: Teacher, questions: dict[str, TeacherRequest], store: AnswerStore, config: LabelConfig):
    result = TeacherPass()
    slots = asyncio.Semaphore(config.concurrency)
    limiter = RateLimiter(config.rpm)
    rng = random.Random(0)
    refusals: list[str] = []
    params = teacher.generation_params()

    async def one(item_id: str, request: TeacherRequest) -> None:
        key = request_key(teacher.name, teacher.model_id, params, request)
        stored = store.get(key)
        if stored is not None:
            result.answers[item_id] = stored.answer
            result.from_store += 1
            result.answers_cost_usd += stored.cost_usd
            return
        expected = cost_usd(teacher.model_id, estimate_input_tokens(teacher.model_id, request), TYPICAL_OUTPUT_TOKENS,
                            config.prices)  # fmt: skip
        delay = 0.0
        for attempt in range(1, config.max_attempts + 1):
            await asyncio.sleep(delay)
            async with slots:
                over_budget = config.max_cost is not None and result.cost_usd + expected > config.max_cost
                if result.stop_reason or over_budget:
                    result.stop_reason = result.stop_reason or f"max cost ${config.max_cost:.2f} reached"
                    result.not_asked += 1
                    return
                await limiter.wait()
                result.requests += 1
                try:
                    answer = await teacher.ask(request)
                except BlockedAnswer as exc:
                    answer = exc.answer.model_copy(update={"unusable": str(exc)})  # billed: kept, never asked again
                except PermanentError as exc:
                    result.problems[item_id] = str(exc)
                    refusals.append(str(exc))
                    if refusals[-SAME_REFUSALS_TO_STOP:] == [str(exc)] * SAME_REFUSALS_TO_STOP:
                        result.stop_reason = f"{teacher.name} refused {SAME_REFUSALS_TO_STOP} requests in a row: {exc}"
                    return
                except TransientError as exc:
                    if attempt == config.max_attempts:
                        result.problems[item_id] = f"gave up after {attempt} attempts: {exc}"
                        return
                    delay = retry_delay(attempt, config.backoff_initial_s, config.backoff_max_s, exc.retry_after, rng)
                    continue
                refusals.clear()
                spent = cost_usd(teacher.model_id, answer.input_tokens, answer.output_tokens, config.prices)
                result.cost_usd += spent
                result.answers_cost_usd += spent
                store.put(key, teacher.name, teacher.model_id, answer, spent)
                result.answers[item_id] = answer
                return

    try:
        await asyncio.gather(*(one(item_id, request) for item_id, request in questions.items()))
    finally:
        await teacher.aclose()
    return result


def ask_teacher(teacher: Teacher, questions: dict[str, TeacherRequest], store_path: Path, config: LabelConfig):
    """Every question's answer (from the store, or asked once), its problems, requests sent and cost."""
    store = AnswerStore(store_path)
    try:
        return asyncio.run(_ask_all(teacher, questions, store, config))
    finally:
        store.close()
