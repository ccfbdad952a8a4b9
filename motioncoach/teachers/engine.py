"""Labeling many images with one teacher: concurrent, paced, retried, and kept as it goes.

Every answer is kept as it arrived before it is checked (LabelStore.add_answer), so a check that changes
later reads it again and buys nothing (teachers.reading). What can be put right exactly is fixed rather
than asked again (labels.fixes), and counted. The run starts with one request in flight and opens up
once the teacher has answered one: a key, model or parameter the teacher refuses costs a few refused
requests, and the same refusal on several requests in a row stops the run naming it (the circuit
breaker); refusals count no ask and lock no image out. A wait the teacher asks for beyond
labeling.max_wait_s leaves the remaining images for a later run instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
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
from motioncoach.teachers.keys import TEACHER_KEYS
from motioncoach.teachers.pacing import RateLimiter, retry_delay
from motioncoach.teachers.pricing import answer_cost, estimate_request_cost
from motioncoach.teachers.reading import current, decide
from motioncoach.teachers.request import build_request
from motioncoach.teachers.store import LabelKey, LabelStore
from motioncoach.teachers.validate import InvalidAnswer, check_answer, checks_version

log = logging.getLogger(__name__)

ASK_LIMIT = "labeling.max_asks_per_image reached"  # how a reason says the image is not asked again
SAME_REFUSALS_TO_STOP = 3  # the same refusal this many times in a row: every other request would get it too
_DIGITS = re.compile(r"\d+")


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
    cached_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    estimate_usd: float | None = Field(None, description="The estimated cost of one request, before any answer.")
    fixes: dict[str, int] = Field(default_factory=dict, description="Answers fixed here instead of asked again.")
    stop_reason: str | None = None


class _Stop(Exception):
    """The run stops asking (a budget, a wait too long, a rejected key, the breaker): the image waits."""


class _Refused(Exception):
    """The teacher refused this request for good without answering it (a 4xx): no ask is counted."""


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
        self.checks = checks_version(config.checks)
        self._limiter = RateLimiter(config.rpm)
        self._slots = asyncio.Semaphore(config.concurrency)
        self._rng = random.Random(seed)
        self._auth_failure: PermanentError | None = None
        self._broken: PermanentError | None = None  # the refusal that stopped the run
        self._refusals: list[str] = []
        self._open = False  # until the teacher answers a request, one is in flight at a time
        self._probe = asyncio.Lock()
        self._reserved = 0.0  # expected cost of requests in flight, so max_cost holds under concurrency
        self._answered = 0
        self._writer: ThreadPoolExecutor | None = None

    def key(self, sample: PoseSample) -> LabelKey:
        """The key this run asks an image under: what is asked for it, this model and its parameters."""
        return LabelKey.of(sample, self.teacher.name, self.teacher.model_id, self.teacher.generation_params())

    def asked_alike(self) -> LabelKey:
        return LabelKey.asked_alike(self.teacher.name, self.teacher.model_id, self.teacher.generation_params())

    def stored(self, sample: PoseSample):
        """The image's stored row under this run's key, as today's checks read it."""
        stored, fixes = current(self.store, self.key(sample), sample, self.config.checks)
        self._count(fixes)
        return stored

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
        # Answers are committed by a thread of their own, never queued behind image encodes in the
        # default pool: an answer that arrived is on disk before a kill could make it be paid again.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="label-store")
        try:
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            self._writer.shutdown(wait=True)
        self.raise_if_refused()
        return self.run

    def raise_if_refused(self) -> None:
        """A rejected key, or the breaker's refusal, ends the run naming what to change; labels stay kept."""
        kept = f"Labels saved so far are kept in {self.store.path}."
        if self._auth_failure is not None:
            variable = TEACHER_KEYS.get(self.teacher.name, "the API key")
            error = self._auth_failure
            change = (
                "enable billing on the key's Google Cloud project"
                if "billing" in str(error).lower()
                else f"check {variable}"
            )
            raise ConfigurationError(
                f"{self.teacher.name} rejected the request (HTTP {error.status}: {error}): {change}. {kept}"
            )
        if self._broken is not None:
            raise ConfigurationError(
                f"{self.teacher.name} refused {SAME_REFUSALS_TO_STOP} requests in a row the same way, so the run "
                f"stopped: {self._broken}. {what_to_change(self._broken, self.teacher.name)} Nothing refused counts "
                f"as an ask: once fixed, a rerun asks every image again. {kept}"
            )

    async def _write(self, call, *args, **kwargs) -> None:
        """A store write off the event loop (sqlite releases the GIL): the loop keeps sending meanwhile."""
        await asyncio.get_running_loop().run_in_executor(self._writer, partial(call, *args, **kwargs))

    async def _label_one(self, sample: PoseSample) -> None:
        key = self.key(sample)
        stored = self.stored(sample)
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
        if self._stopped() or not self.send:
            self.run.deferred.append(sample.sha256)
            return
        try:
            request = await asyncio.to_thread(build_request, sample)
        except OSError as exc:
            self.store.put(key, reason=f"image unreadable: {exc}", attempts=0, checks=self.checks)
            self.run.failed[sample.sha256] = f"image unreadable: {exc}"
            return
        asks, reason = 0, ""
        try:
            # Each answer is an ask, the re-asks after an unusable one (invalid_retries) included.
            while asks < 1 + self.config.invalid_retries and asked + asks < limit:
                answer, tries = await self._ask(request)
                asks += 1
                await self._write(self.store.add_answer, key, answer, self._cost(answer), tries)
                try:
                    if answer.unusable:
                        raise InvalidAnswer(answer.unusable)
                    checked = check_answer(answer.text, sample, self.config.checks)
                except InvalidAnswer as exc:
                    reason = f"invalid answer: {exc}"
                    continue
                await self._write(self.store.settle, key, label=checked.label, checks=self.checks)
                self._count(checked.fixes)
                self.run.labeled[sample.sha256] = checked.label
                return
        except _Stop:
            if not asks:
                self.run.deferred.append(sample.sha256)
                return
        except BlockedAnswer as exc:  # billed, and refused on content: kept, never asked again
            asks += 1
            refusal = exc.answer.model_copy(update={"unusable": str(exc)})
            await self._write(self.store.add_answer, key, refusal, self._cost(exc.answer))
            reason = str(exc)
        except _Refused as exc:  # no answer: nothing counted, nothing locked; the next run asks again
            if stored is None:
                self.store.put(key, reason=str(exc), attempts=0, asks=0, checks=self.checks)
            elif stored.status != "labeled":
                self.store.settle(key, reason=str(exc), checks=self.checks)
            self.run.failed[sample.sha256] = str(exc)
            return
        except TransientError as exc:
            reason = f"gave up after {self.config.max_attempts} attempts: {exc}"
        await self._write(self._settle_failure, key, sample, stored, reason, asks)
        if key.sha256 in self.run.labeled:
            return
        settled = is_blocked(reason) or asked + asks < limit
        self.run.failed[key.sha256] = reason if settled else with_ask_limit(reason, asked + asks, limit)

    def _settle_failure(self, key: LabelKey, sample: PoseSample, stored, reason: str, asks: int) -> None:
        """No answer of this run made a label: the key's answers decide (an older one may pass), else the reason."""
        if asks or (stored is not None and self.store.answers_of(key)):
            label, decided, fixes = decide(self.store.answers_of(key), sample, self.config.checks)
            if label is None and stored is not None and stored.status == "labeled" and not asks:
                label = stored.label
            if label is not None:
                self.store.settle(key, label=label, checks=self.checks)
                self.run.labeled[key.sha256] = label
                self._count(fixes)
                return
            reason = reason if asks else (decided or reason)
            self.store.settle(key, reason=reason, checks=self.checks)
            return
        if stored is not None and stored.status == "labeled":  # a disputed label asked again keeps its label
            self.run.labeled[key.sha256] = stored.label
        elif stored is not None:
            self.store.settle(key, reason=reason, checks=self.checks)
        else:
            self.store.put(key, reason=reason, attempts=0, asks=0, checks=self.checks)

    def _stopped(self) -> bool:
        return bool(self.run.stop_reason or self._auth_failure or self._broken)

    @asynccontextmanager
    async def _slow_start(self):
        """One request at a time until the teacher has answered one, then as many as the slots allow."""
        if self._open:
            yield
            return
        await self._probe.acquire()
        if self._open:
            self._probe.release()
            yield
            return
        try:
            yield
        finally:
            self._probe.release()

    async def _ask(self, request: TeacherRequest) -> tuple[TeacherAnswer, int]:
        """One answer, retrying transient errors; returns it with the number of requests it took."""
        for attempt in range(1, self.config.max_attempts + 1):
            self._check_budget(request)
            async with self._slots, self._slow_start():
                await self._limiter.wait()
                self._check_budget(request)  # after the wait and before counting, with no await between: a budget holds
                self.store.count_request(self.teacher.name)
                self.run.requests += 1
                reserved = self._expected_cost(request)
                self._reserved += reserved
                try:
                    answer = await self.teacher.ask(request)
                    self._answered_now()
                    return answer, attempt
                except TransientError as exc:
                    self._answered_now()
                    error = exc
                except BlockedAnswer:
                    self._answered_now()
                    raise
                except PermanentError as exc:
                    if is_auth_error(exc):
                        self._auth_failure = exc
                        raise _Stop() from None
                    self._refused(exc)
                    raise _Refused(f"rejected by {self.teacher.name}: {exc}") from None
                finally:
                    self._reserved -= reserved
            if attempt == self.config.max_attempts:
                raise error
            if error.retry_after is not None and error.retry_after > self.config.max_wait_s:
                self._wait_too_long(error)
                raise _Stop()
            delay = retry_delay(
                attempt, self.config.backoff_initial_s, self.config.backoff_max_s, error.retry_after, self._rng
            )
            log.debug("retrying %s in %.1f s after %s", request.sha256[:12], delay, error)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _answered_now(self) -> None:
        """The teacher answered (an answer, a refusal on content, or an error worth retrying): it takes requests."""
        self._open = True
        self._refusals.clear()

    def _refused(self, error: PermanentError) -> None:
        """The breaker: the same refusal SAME_REFUSALS_TO_STOP times in a row stops every request."""
        self._refusals.append(f"{error.status}:{_DIGITS.sub('#', str(error))}")
        if len(self._refusals) >= SAME_REFUSALS_TO_STOP and len(set(self._refusals[-SAME_REFUSALS_TO_STOP:])) == 1:
            self._broken = error
            self.run.stop_reason = f"{self.teacher.name} refuses every request: {error}"

    def _wait_too_long(self, error: TransientError) -> None:
        """A wait past labeling.max_wait_s: the images left wait for a later run, which is said when."""
        if self.run.stop_reason:
            return
        when = datetime.now(UTC) + timedelta(seconds=error.retry_after or 0)
        self.run.stop_reason = (
            f"{self.teacher.name} asked to wait {_duration(error.retry_after or 0)} ({error}), longer than "
            f"labeling.max_wait_s ({_duration(self.config.max_wait_s)}): the images left are labeled by a run after "
            f"{when.isoformat(timespec='minutes').replace('+00:00', ' UTC')}"
        )

    def _check_budget(self, request: TeacherRequest) -> None:
        if self._stopped():
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
        """The next request's cost: this run's average so far, or before any answer the estimate from the
        request's real size (its image at the model's media resolution, its texts)."""
        if self._answered:
            return self.run.cost_usd / self._answered
        estimate = estimate_request_cost(self.teacher.model_id, request, self.config.prices)
        self.run.estimate_usd = self.run.estimate_usd or estimate
        return estimate

    def _cost(self, answer: TeacherAnswer) -> float:
        cost = answer_cost(self.teacher.model_id, answer, self.config.prices)
        self.run.input_tokens += answer.input_tokens
        self.run.cached_tokens += answer.cached_tokens
        self.run.output_tokens += answer.output_tokens
        self.run.cost_usd += cost
        self._answered += 1
        return cost

    def _count(self, fixes: list[str]) -> None:
        if fixes:
            self.run.fixes = dict(Counter(self.run.fixes) + Counter(fixes))


def what_to_change(error: PermanentError, teacher: str) -> str:
    """The one thing to look at for a refusal that hits every request."""
    if error.status == 402:
        return f"The {teacher} account has no credits left: add some, or choose a :free model."
    if error.status == 404:
        return "The model or route does not exist: check --gemini-model / --openrouter-model."
    if error.status == 429:
        return "The account's daily quota is spent: rerun tomorrow, or raise the quota."
    return "Check the model (--gemini-model, --openrouter-model) and labeling's parameters (thinking, temperature)."


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


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
