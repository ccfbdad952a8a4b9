"""Labeling many images with one teacher: concurrent, paced, retried, and saved as it goes."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from motioncoach.config import LabelConfig
from motioncoach.errors import ConfigurationError
from motioncoach.labels.schema import CoachingLabel
from motioncoach.records import PoseSample
from motioncoach.teachers.base import (
    BLOCKED,
    BlockedAnswer,
    PermanentError,
    Teacher,
    TeacherAnswer,
    TeacherRequest,
    TransientError,
)
from motioncoach.teachers.pacing import RateLimiter, retry_delay
from motioncoach.teachers.pricing import TYPICAL_INPUT_TOKENS, TYPICAL_OUTPUT_TOKENS, cost_usd
from motioncoach.teachers.request import build_request
from motioncoach.teachers.store import LabelKey, LabelStore
from motioncoach.teachers.validate import InvalidAnswer, parse_answer

log = logging.getLogger(__name__)

KEY_VARIABLES = {"gemini": "GEMINI_API_KEY", "openrouter": "OPENROUTER_API_KEY"}


class TeacherRun(BaseModel):
    """One teacher's pass over the images."""

    teacher: str
    model_id: str
    labeled: dict[str, CoachingLabel] = Field(default_factory=dict, description="sha256 -> label")
    failed: dict[str, str] = Field(default_factory=dict, description="sha256 -> reason")
    deferred: list[str] = Field(default_factory=list, description="Images left for a later run.")
    from_store: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    stop_reason: str | None = None


class _Stop(Exception):
    """The run's budget is spent: leave the image for the next run."""


class _Rejected(Exception):
    """The teacher refused this request for good; `answer` is the billed refusal, if there was one."""

    def __init__(self, reason: str, answer: TeacherAnswer | None = None, attempt: int = 0):
        super().__init__(reason)
        self.answer = answer
        self.attempt = attempt


class TeacherEngine:
    """Runs one teacher over many images under the limits in LabelConfig."""

    def __init__(
        self,
        teacher: Teacher,
        store: LabelStore,
        config: LabelConfig,
        *,
        refresh: frozenset[str] = frozenset(),
        send: bool = True,
        seed: int = 0,
    ):
        self.teacher = teacher
        self.store = store
        self.config = config
        self.refresh = refresh  # images whose stored label is asked for again (a relabel)
        self.send = send  # False: answer from the store only, sending nothing
        self.run = TeacherRun(teacher=teacher.name, model_id=teacher.model_id)
        self._limiter = RateLimiter(config.rpm)
        self._slots = asyncio.Semaphore(config.concurrency)
        self._rng = random.Random(seed)
        self._auth_failure: PermanentError | None = None
        self._reserved = 0.0  # expected cost of requests in flight, so max_cost holds under concurrency
        self._answered = 0

    def key(self, sample: PoseSample) -> LabelKey:
        params = self.teacher.generation_params()
        return LabelKey.current(sample.sha256, self.teacher.name, self.teacher.model_id, params)

    async def label_all(
        self, samples: Sequence[PoseSample], progress: Callable[[int, int], None] | None = None
    ) -> TeacherRun:
        queue: asyncio.Queue[PoseSample] = asyncio.Queue()
        for sample in samples:
            queue.put_nowait(sample)
        done = 0

        async def worker() -> None:
            nonlocal done
            while not queue.empty():
                sample = queue.get_nowait()
                await self._label_one(sample)
                done += 1
                if progress:
                    progress(done, len(samples))

        # More workers than request slots, so images waiting out a backoff don't idle the slots.
        workers = min(len(samples), 2 * self.config.concurrency) or 1
        await asyncio.gather(*(worker() for _ in range(workers)))
        if self._auth_failure is not None:
            variable = KEY_VARIABLES.get(self.teacher.name, "the API key")
            raise ConfigurationError(
                f"{self.teacher.name} rejected the request (HTTP {self._auth_failure.status}): check {variable}. "
                f"Labels saved so far are kept in {self.store.path}."
            )
        return self.run

    async def _label_one(self, sample: PoseSample) -> None:
        key = self.key(sample)
        stored = self.store.get(key)
        if stored is not None and stored.status == "labeled" and sample.sha256 not in self.refresh:
            self.run.labeled[sample.sha256] = stored.label
            self.run.from_store += 1
            return
        refused = stored is not None and is_blocked(stored.reason) and sample.sha256 not in self.refresh
        if stored is not None and stored.status == "failed" and (not self.send or refused):
            self.run.failed[sample.sha256] = stored.reason or "failed"  # a refusal would only be paid again
            return
        if self.run.stop_reason or self._auth_failure or not self.send:
            self.run.deferred.append(sample.sha256)
            return
        try:
            request = await asyncio.to_thread(build_request, sample)
        except OSError as exc:
            self._fail(key, f"image unreadable: {exc}", attempts=0)
            return
        attempts = tokens_in = tokens_out = 0
        cost = 0.0
        reason = ""
        try:
            for _ in range(1 + self.config.invalid_retries):
                answer, tries = await self._ask(request)
                attempts += tries
                tokens_in += answer.input_tokens
                tokens_out += answer.output_tokens
                cost += self._cost(answer)
                try:
                    label = parse_answer(answer.text, sample)
                except InvalidAnswer as exc:
                    reason = f"invalid answer: {exc}"
                    continue
                # Committed off the event loop (sqlite releases the GIL): the loop keeps sending meanwhile.
                await asyncio.to_thread(self.store.put, key, label=label, attempts=attempts, input_tokens=tokens_in,
                                        output_tokens=tokens_out, cost_usd=cost)  # fmt: skip
                self.run.labeled[sample.sha256] = label
                return
        except _Stop:
            self.run.deferred.append(sample.sha256)
            return
        except _Rejected as exc:
            reason = str(exc)
            attempts += exc.attempt
            if exc.answer is not None:
                tokens_in += exc.answer.input_tokens
                tokens_out += exc.answer.output_tokens
                cost += self._cost(exc.answer)
        except TransientError as exc:
            reason = f"gave up after {self.config.max_attempts} attempts: {exc}"
        self._fail(key, reason, attempts, tokens_in, tokens_out, cost)

    def _fail(self, key: LabelKey, reason: str, attempts: int, tokens_in=0, tokens_out=0, cost=0.0) -> None:
        self.store.put(key, reason=reason, attempts=attempts, input_tokens=tokens_in,
                       output_tokens=tokens_out, cost_usd=cost)  # fmt: skip
        self.run.failed[key.sha256] = reason

    async def _ask(self, request: TeacherRequest) -> tuple[TeacherAnswer, int]:
        """One answer, retrying transient errors; returns it with the number of requests it took."""
        for attempt in range(1, self.config.max_attempts + 1):
            self._check_budget()
            async with self._slots:
                await self._limiter.wait()
                self._check_budget()  # after the wait and before counting, with no await between: a budget holds
                self.store.count_request(self.teacher.name)
                self.run.requests += 1
                reserved = self._expected_cost()
                self._reserved += reserved
                try:
                    return await self.teacher.ask(request), attempt
                except TransientError as exc:
                    error = exc
                except BlockedAnswer as exc:
                    raise _Rejected(str(exc), exc.answer, attempt) from None
                except PermanentError as exc:
                    if is_auth_error(exc):
                        self._auth_failure = exc
                        raise _Stop() from None
                    raise _Rejected(f"rejected by {self.teacher.name}: {exc}") from None
                finally:
                    self._reserved -= reserved
            if attempt == self.config.max_attempts:
                raise error
            delay = retry_delay(
                attempt, self.config.backoff_initial_s, self.config.backoff_max_s, error.retry_after, self._rng
            )
            log.debug("retrying %s in %.1f s after %s", request.sha256[:12], delay, error)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _check_budget(self) -> None:
        if self.run.stop_reason or self._auth_failure:
            raise _Stop()
        budget = self.config.daily_budget
        if budget is not None and self.store.requests_today(self.teacher.name) >= budget:
            self.run.stop_reason = (
                f"daily budget of {budget} {self.teacher.name} requests is spent; the next run continues"
            )
            raise _Stop()
        if self.config.max_cost is not None:
            if self.run.cost_usd + self._reserved + self._expected_cost() > self.config.max_cost:
                self.run.stop_reason = (
                    f"max cost ${self.config.max_cost:.2f} reached (spent ${self.run.cost_usd:.4f}); "
                    "the next run continues"
                )
                raise _Stop()

    def _expected_cost(self) -> float:
        """The next request's cost: this run's average so far, or a typical request's before any answer."""
        if self._answered:
            return self.run.cost_usd / self._answered
        return cost_usd(self.teacher.model_id, TYPICAL_INPUT_TOKENS, TYPICAL_OUTPUT_TOKENS, self.config.prices)

    def _cost(self, answer: TeacherAnswer) -> float:
        cost = cost_usd(self.teacher.model_id, answer.input_tokens, answer.output_tokens, self.config.prices)
        self.run.input_tokens += answer.input_tokens
        self.run.output_tokens += answer.output_tokens
        self.run.cost_usd += cost
        self._answered += 1
        return cost


def is_blocked(reason: str | None) -> bool:
    """A stored failure that is the teacher's refusal on content, not a flaky call."""
    return bool(reason) and reason.startswith(BLOCKED)


def is_auth_error(error: PermanentError) -> bool:
    """A rejected key fails every request alike; Gemini says so with a 400 API_KEY_INVALID."""
    text = str(error).lower()
    return error.status in (401, 403) or "api_key_invalid" in text or "api key not valid" in text
