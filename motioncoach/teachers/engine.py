"""Labeling many images with one teacher: concurrent, paced, retried, and saved as it goes."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

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
from motioncoach.teachers.pricing import TYPICAL_OUTPUT_TOKENS, cost_usd, estimate_input_tokens
from motioncoach.teachers.request import build_request
from motioncoach.teachers.store import LabelKey, LabelStore, StoredLabel
from motioncoach.teachers.validate import InvalidAnswer, parse_answer

log = logging.getLogger(__name__)

KEY_VARIABLES = {"gemini": "GEMINI_API_KEY", "openrouter": "OPENROUTER_API_KEY"}
ASK_LIMIT = "labeling.max_asks_per_image reached"  # how a reason says the image is not asked again


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
        self._writer: ThreadPoolExecutor | None = None

    def key(self, sample: PoseSample) -> LabelKey:
        return self.key_for(sample.sha256)

    def key_for(self, sha256: str) -> LabelKey:
        """The key this run asks an image under: the current prompts and schema, this model and its parameters."""
        return LabelKey.current(sha256, self.teacher.name, self.teacher.model_id, self.teacher.generation_params())

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
        # Labels are committed by a thread of their own, never queued behind image encodes in the
        # default pool: an answer that arrived is on disk before a kill could make it be paid again.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="label-store")
        try:
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            self._writer.shutdown(wait=True)
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
        limit = self.config.max_asks_per_image
        asked = stored.asks if stored is not None else 0  # answers this key took on earlier runs
        again = sample.sha256 in self.refresh and asked < limit  # a disputed label, asked again within the limit
        if stored is not None and stored.status == "labeled" and not again:
            self.run.labeled[sample.sha256] = stored.label
            self.run.from_store += 1
            return
        refused = stored is not None and is_blocked(stored.reason) and sample.sha256 not in self.refresh
        if stored is not None and stored.status == "failed" and (not self.send or refused or asked >= limit):
            # A refusal would only be paid again; an image out of asks stays failed with its last reason.
            reason = stored.reason or "failed"
            self.run.failed[sample.sha256] = reason if refused else with_ask_limit(reason, asked, limit)
            return
        if self.run.stop_reason or self._auth_failure or not self.send:
            self.run.deferred.append(sample.sha256)
            return
        try:
            request = await asyncio.to_thread(build_request, sample)
        except OSError as exc:
            self._fail(key, f"image unreadable: {exc}", attempts=0)
            return
        attempts = tokens_in = tokens_out = asks = 0
        cost = 0.0
        reason = ""
        try:
            # Each answer is an ask, the re-asks after an unusable one (invalid_retries) included.
            while asks < 1 + self.config.invalid_retries and asked + asks < limit:
                answer, tries = await self._ask(request)
                attempts += tries
                asks += 1
                tokens_in += answer.input_tokens
                tokens_out += answer.output_tokens
                cost += self._cost(answer)
                try:
                    if answer.unusable:
                        raise InvalidAnswer(answer.unusable)
                    label = parse_answer(answer.text, sample)
                except InvalidAnswer as exc:
                    reason = f"invalid answer: {exc}"
                    continue
                # Committed off the event loop (sqlite releases the GIL): the loop keeps sending meanwhile.
                spent = with_earlier(stored, attempts, tokens_in, tokens_out, cost)
                commit = partial(self.store.put, key, label=label, asks=asked + asks, **spent)
                await asyncio.get_running_loop().run_in_executor(self._writer, commit)
                self.run.labeled[sample.sha256] = label
                return
        except _Stop:
            if not asks:
                self.run.deferred.append(sample.sha256)
                return
        except _Rejected as exc:
            reason = str(exc)
            attempts += exc.attempt
            asks += 1  # a refusal or a rejection of this very request would come back the same
            if exc.answer is not None:
                tokens_in += exc.answer.input_tokens
                tokens_out += exc.answer.output_tokens
                cost += self._cost(exc.answer)
        except TransientError as exc:
            reason = f"gave up after {self.config.max_attempts} attempts: {exc}"
        spent = with_earlier(stored, attempts, tokens_in, tokens_out, cost)
        if stored is not None and stored.status == "labeled":  # a disputed label asked again keeps its label
            self.store.put(key, label=stored.label, asks=asked + asks, **spent)
            self.run.labeled[key.sha256] = stored.label
            return
        self.store.put(key, reason=reason, asks=asked + asks, **spent)
        blocked_or_spare = is_blocked(reason) or asked + asks < limit
        self.run.failed[key.sha256] = reason if blocked_or_spare else with_ask_limit(reason, asked + asks, limit)

    def _fail(self, key: LabelKey, reason: str, attempts: int) -> None:
        self.store.put(key, reason=reason, attempts=attempts)
        self.run.failed[key.sha256] = reason

    async def _ask(self, request: TeacherRequest) -> tuple[TeacherAnswer, int]:
        """One answer, retrying transient errors; returns it with the number of requests it took."""
        for attempt in range(1, self.config.max_attempts + 1):
            self._check_budget(request)
            async with self._slots:
                await self._limiter.wait()
                self._check_budget(request)  # after the wait and before counting, with no await between: a budget holds
                self.store.count_request(self.teacher.name)
                self.run.requests += 1
                reserved = self._expected_cost(request)
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

    def _check_budget(self, request: TeacherRequest) -> None:
        if self.run.stop_reason or self._auth_failure:
            raise _Stop()
        budget = self.config.daily_budget
        if budget is not None and self.store.requests_today(self.teacher.name) >= budget:
            self.run.stop_reason = (
                f"daily budget of {budget} {self.teacher.name} requests is spent; the next run continues"
            )
            raise _Stop()
        if self.config.max_cost is not None:
            if self.run.cost_usd + self._reserved + self._expected_cost(request) > self.config.max_cost:
                self.run.stop_reason = (
                    f"max cost ${self.config.max_cost:.2f} reached (spent ${self.run.cost_usd:.4f}); "
                    "the next run continues"
                )
                raise _Stop()

    def _expected_cost(self, request: TeacherRequest) -> float:
        """The next request's cost: this run's average so far, or before any answer an estimate from the
        request's real size (its image at the model's media resolution, its texts)."""
        if self._answered:
            return self.run.cost_usd / self._answered
        tokens_in = estimate_input_tokens(self.teacher.model_id, request)
        return cost_usd(self.teacher.model_id, tokens_in, TYPICAL_OUTPUT_TOKENS, self.config.prices)

    def _cost(self, answer: TeacherAnswer) -> float:
        cost = cost_usd(self.teacher.model_id, answer.input_tokens, answer.output_tokens, self.config.prices)
        self.run.input_tokens += answer.input_tokens
        self.run.output_tokens += answer.output_tokens
        self.run.cost_usd += cost
        self._answered += 1
        return cost


def with_earlier(stored: StoredLabel | None, attempts: int, tokens_in: int, tokens_out: int, cost: float) -> dict:
    """The store's counts for a key after this run: what it took before (a row is replaced) plus this run's."""
    before = (stored.attempts, stored.input_tokens, stored.output_tokens, stored.cost_usd) if stored else (0, 0, 0, 0.0)
    return {
        "attempts": before[0] + attempts,
        "input_tokens": before[1] + tokens_in,
        "output_tokens": before[2] + tokens_out,
        "cost_usd": before[3] + cost,
    }


def with_ask_limit(reason: str, asks: int, limit: int) -> str:
    """A failure's last reason, saying it is not asked again (what the label-failures artifact lists)."""
    if asks < limit or ASK_LIMIT in reason:
        return reason
    return f"{reason} ({ASK_LIMIT}: asked {asks} times; asked again when the prompt, the model or the limit changes)"


def reached_ask_limit(reason: str | None) -> bool:
    """Whether a reported failure is an image that is not asked again."""
    return bool(reason) and ASK_LIMIT in reason


def is_blocked(reason: str | None) -> bool:
    """A stored failure that is the teacher's refusal on content, not a flaky call."""
    return bool(reason) and reason.startswith(BLOCKED)


def is_auth_error(error: PermanentError) -> bool:
    """A rejected key fails every request alike; Gemini says so with a 400 API_KEY_INVALID."""
    text = str(error).lower()
    return error.status in (401, 403) or "api_key_invalid" in text or "api key not valid" in text
