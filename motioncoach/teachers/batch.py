"""Gemini's Batch API: submit on one run, collect on a later one, at half the price.

Jobs are kept in the label store, so a run that collects needs nothing but the data dir. A job is
recorded, under a display name derived from its content, before batches.create is sent; when the
answer to the create is lost (a timeout, a 5xx, a crash), the job is looked up by that name before
anything is submitted again. A finished job's answers are all recorded, for every image in it and
whatever the current run asked for, each under the key its request was built with, through the
same validation as synchronous answers; the job is closed only once they are. A job whose state
cannot be read is kept and asked about again later: only one Gemini reports FAILED, CANCELLED or
EXPIRED gives its images back. An image is in at most one live job of the current key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable, Sequence

from motioncoach.errors import ConfigurationError
from motioncoach.records import PoseSample
from motioncoach.teachers.base import (
    BlockedAnswer,
    PermanentError,
    TeacherAnswer,
    TeacherError,
    TeacherRequest,
    TransientError,
)
from motioncoach.teachers.engine import TeacherEngine, TeacherRun, is_auth_error, is_blocked, with_ask_limit
from motioncoach.teachers.keys import TEACHER_KEYS
from motioncoach.teachers.pacing import retry_delay
from motioncoach.teachers.pricing import TYPICAL_OUTPUT_TOKENS, answer_cost, cost_usd, estimate_input_tokens
from motioncoach.teachers.reading import decide
from motioncoach.teachers.request import build_request
from motioncoach.teachers.store import BatchJob, LabelKey

log = logging.getLogger(__name__)
# A job billed this much above its estimate is worth a warning: the cap's estimate was low.
ESTIMATE_MARGIN = 1.1
# Reads of a job that Gemini answers 404 (the job is gone) before its images are given back to a new job.
MAX_MISSES = 3


def takes_batches(teacher) -> bool:
    """Whether the teacher has a Batch API (Gemini); the others answer online, also in a --batch run."""
    return all(hasattr(teacher, n) for n in ("submit_batch", "collect_batch", "find_batch", "upload_batch_input"))


def display_name(keys: Sequence[LabelKey]) -> str:
    """A job's display name, derived from what it asks: the same requests always give the same name."""
    digest = hashlib.sha256("\n".join(sorted(k.id for k in keys)).encode()).hexdigest()
    return f"motioncoach-{digest[:24]}"


async def run_batch(engine: TeacherEngine, samples: Sequence[PoseSample], wait: bool = False) -> TeacherRun:
    """Collect finished jobs, then submit jobs for every image that has neither a label nor a live job. With
    wait, go on (every labeling.batch_poll_s) until no job of this run's images is open, submitting what the
    queue has room for as jobs finish: every answer is stored before it returns."""
    teacher, run = engine.teacher, engine.run
    if not takes_batches(teacher):
        raise ConfigurationError(f"--batch needs a teacher with a Batch API (gemini), not {teacher.name}.")
    while True:
        run.stop_reason = None  # this pass's notes only
        waiting = await _collect(engine, {s.sha256: s for s in samples})
        pending = _pending(engine, samples, waiting)
        submitted = await _submit(engine, pending)
        waiting.update(submitted)
        left = {s.sha256 for s in pending} - set(submitted) - run.failed.keys()
        run.deferred = sorted(waiting | left)
        if not (wait and waiting):
            break
        log.info(
            "%d images wait in Gemini batch jobs; looking again in %.0f s", len(waiting), engine.config.batch_poll_s
        )
        await asyncio.sleep(engine.config.batch_poll_s)
    engine.raise_if_refused()
    if waiting:
        current = [job for job in engine.store.open_batches(teacher.name) if _is_current(engine, job)]
        jobs = [f"{job.job_name} ({len(job.images)})" for job in current]
        listed = ", ".join(jobs[:5]) + (f" and {len(jobs) - 5} more" if len(jobs) > 5 else "")
        collect = (
            f"{len(waiting)} images wait in Gemini batch job(s) {listed}; "
            "the next run (or the nightly relabel) collects them"
        )
        run.stop_reason = f"{collect}; {run.stop_reason}" if run.stop_reason else collect
    return run


async def collect_then_ask(
    engine: TeacherEngine, samples: Sequence[PoseSample], progress: Callable[[int, int], None] | None = None
) -> TeacherRun:
    """The online path on a data dir with open batch jobs: their answers are collected first, and an
    image still in a live job waits for it rather than being paid for twice."""
    teacher = engine.teacher
    if not takes_batches(teacher) or not engine.store.open_batches(teacher.name):
        return await engine.label_all(samples, progress)
    waiting = await _collect(engine, {s.sha256: s for s in samples})
    done = engine.run.labeled.keys() | engine.run.failed.keys()
    run = await engine.label_all([s for s in samples if s.sha256 not in waiting | done], progress)
    if waiting:
        run.deferred = sorted(set(run.deferred) | waiting)
        collect = f"{len(waiting)} images wait in Gemini batch jobs submitted earlier; a later run collects them"
        run.stop_reason = f"{collect}; {run.stop_reason}" if run.stop_reason else collect
    return run


def _is_current(engine: TeacherEngine, job: BatchJob) -> bool:
    """Whether the job asks what this run asks (prompts, schema, encoding, model, parameters)."""
    return job.key("").same_request(engine.asked_alike())


async def _collect(engine: TeacherEngine, by_sha: dict[str, PoseSample]) -> set[str]:
    """Record the answers of every finished job of the teacher; the images of this run's key that wait in
    jobs still running, still being created, or whose state cannot be read now."""
    teacher, store = engine.teacher, engine.store
    waiting: set[str] = set()
    for job in store.open_batches(teacher.name):
        current = _is_current(engine, job)
        if not job.created:
            job = await _resolve_intent(engine, job)
            if job is None or not job.created:
                if job is not None and current:
                    waiting.update(job.images)
                continue
        try:
            results = await teacher.collect_batch(job.job_name)
        except TeacherError as exc:  # not a verdict on the job: it stays open and is asked about next time
            _auth_check(engine, exc, f"reading batch job {job.job_name}")
            if isinstance(exc, PermanentError) and exc.status == 404 and job.misses + 1 >= MAX_MISSES:
                log.warning("Gemini batch job %s answered 404 %d times: it is gone, its images are submitted again",
                            job.job_name, job.misses + 1)  # fmt: skip
                store.close_batch(job.job_name, "lost")
                continue
            if isinstance(exc, PermanentError) and exc.status == 404:
                store.record_batch_miss(job.job_name)
            note = f"batch job {job.job_name} could not be read ({exc}); it is kept and read again next run"
            log.warning(note)
            _note(engine, note)
            if current:
                waiting.update(job.images)
            continue
        if results.ended_without_results:
            state = results.state.removeprefix("JOB_STATE_").lower()
            log.warning("Gemini batch job %s ended %s; its images are submitted again", job.job_name, state)
            store.close_batch(job.job_name, state)
            continue
        if not results.succeeded:
            if current:
                waiting.update(job.images)
            continue
        unrecorded = _record_job(engine, job, results, by_sha)
        if current:
            waiting.update(unrecorded)
    return waiting


async def _resolve_intent(engine: TeacherEngine, job: BatchJob) -> BatchJob | None:
    """A job recorded before its create was answered: found by its display name and adopted, or dropped
    when Gemini has no such job (None). Kept as it is while the lookup itself fails."""
    teacher, store = engine.teacher, engine.store
    try:
        name = await teacher.find_batch(job.display_name, store.batch_names(teacher.name))
    except TeacherError as exc:
        _auth_check(engine, exc, "listing batch jobs")
        _note(engine, f"batch job {job.display_name} could not be looked up ({exc}); it is looked up again next run")
        return job
    if name is None:
        log.info("Gemini batch job %s was never created; its images are submitted again", job.display_name)
        if job.input_file is None:  # an uploaded input file stays recorded for the job submitted again
            store.drop_batch_intent(job.display_name)
        return None
    log.info("Gemini batch job %s was created as %s; collecting it", job.display_name, name)
    store.batch_created(job.display_name, name)
    await asyncio.to_thread(store.make_durable)
    return job.model_copy(update={"job_name": name, "state": "submitted"})


def _record_job(engine: TeacherEngine, job: BatchJob, results, by_sha: dict[str, PoseSample]) -> set[str]:
    """Record every entry of a finished job under the key it was submitted with, in one transaction, and
    close the job once all are; the images whose entries wait for a run that holds their sample."""
    store = engine.store
    current = _is_current(engine, job)
    samples = {s.sha256: s for s in job.samples} if job.samples is not None else by_sha  # older jobs: this run's
    images = set(job.images)
    recorded, unrecorded = set(job.recorded), set()
    billed = job.billed_cost_usd or 0.0
    answers = dict(results.answers)
    if results.unkeyed and results.entries == len(job.images):  # in the order of the requests
        answers |= {job.images[i]: r for i, r in results.unkeyed.items() if job.images[i] not in answers}
    with store.transaction():
        for sha, result in answers.items():
            if sha not in images or sha in recorded:
                continue
            sample = samples.get(sha)
            if sample is None:
                unrecorded.add(sha)
                continue
            key = job.key(sha)
            if not key.request and current:  # a job recorded before requests were: asked as today's requests are
                key = engine.key(sample)
            billed += _record(engine, key, sample, result, report=current and sha in by_sha)
            recorded.add(sha)
        missing = images - answers.keys()
        store.record_batch_entries(job.job_name, sorted(recorded), billed)
        if not unrecorded:
            store.close_batch(job.job_name, "collected")
    if missing:
        log.warning(
            "Gemini batch job %s: %d entries named no image and %d images had no entry; those are submitted again",
            job.job_name, results.unmatched, len(missing),
        )  # fmt: skip
    if not unrecorded and job.estimated_cost_usd is not None:
        said = f"Gemini batch job {job.job_name} was billed ${billed:.4f}, estimated ${job.estimated_cost_usd:.4f}"
        if billed > job.estimated_cost_usd * ESTIMATE_MARGIN:
            log.warning("%s: later jobs are estimated from what it was billed", said)
        else:
            log.info(said)
    return unrecorded


def _pending(engine: TeacherEngine, samples: Sequence[PoseSample], waiting: set[str]) -> list[PoseSample]:
    """Images to submit: no label, no live job, asks left, and not refused on content before."""
    run, pending, limit = engine.run, [], engine.config.max_asks_per_image
    for sample in samples:
        sha = sample.sha256
        if sha in waiting or sha in run.labeled or sha in run.failed:
            continue
        stored = engine.stored(sample)
        asked = stored.asks if stored is not None else 0
        again = sha in engine.refresh and asked < limit
        if stored is not None and stored.status == "labeled" and not again:
            run.from_store += 1
            run.labeled[sha] = stored.label
        elif stored is not None and is_blocked(stored.reason) and sha not in engine.refresh:
            run.failed[sha] = stored.reason
        elif stored is not None and stored.status == "failed" and asked >= limit:
            run.failed[sha] = with_ask_limit(stored.reason or "failed", asked, limit)
        else:
            pending.append(sample)
    return pending


async def _submit(engine: TeacherEngine, pending: list[PoseSample]) -> list[str]:
    """Submit jobs of at most batch_job_requests images within the day's budget, the cost cap and the room
    left in Gemini's queue (labeling.batch_queued_tokens, over this teacher's open jobs); the sha256 of every
    image now in a job."""
    config, run, name = engine.config, engine.run, engine.teacher.name
    submitted: list[str] = []
    budget = config.daily_budget
    requests_left = None if budget is None else max(0, budget - engine.store.requests_today(name))
    cost_left = config.max_cost
    tokens_left = config.batch_queued_tokens - engine.store.queued_batch_tokens(name)
    billed_before = engine.store.batch_cost_per_request(name, engine.teacher.model_id) or 0.0
    reasons: list[str] = []
    size = config.batch_job_requests
    for start in range(0, len(pending), size):
        chunk = pending[start : start + size]
        requests, samples = [], []
        # Encoded in the default thread pool, several at once, as the online path does.
        built = await asyncio.gather(*(asyncio.to_thread(build_request, s) for s in chunk), return_exceptions=True)
        for sample, request in zip(chunk, built, strict=True):
            if isinstance(request, OSError):
                reason = f"image unreadable: {request}"
                engine.store.put(engine.key(sample), reason=reason, attempts=0, checks=engine.checks)
                run.failed[sample.sha256] = reason
            elif isinstance(request, BaseException):
                raise request
            else:
                requests.append(request)
                samples.append(sample)
        if not requests:
            continue
        wanted = len(requests)
        if requests_left is not None and requests_left < len(requests):
            requests = requests[:requests_left]
            reasons.append(f"daily budget of {config.daily_budget} {name} requests is spent")
        tokens = [estimate_input_tokens(engine.teacher.model_id, r) for r in requests]
        fitting = 0
        while fitting < len(tokens) and sum(tokens[: fitting + 1]) <= tokens_left:
            fitting += 1
        if fitting < len(requests):
            requests = requests[:fitting]
            queue = f"{config.batch_queued_tokens:,}"
            reasons.append(
                f"Gemini's batch queue is full (labeling.batch_queued_tokens: {queue} tokens in open jobs): the rest "
                "is submitted once jobs finish (--wait, or the next run)"
            )
        costs = [max(_estimated_cost(engine, t), billed_before) for t in tokens[: len(requests)]]
        if cost_left is not None:
            affordable = 0
            while affordable < len(costs) and sum(costs[: affordable + 1]) <= cost_left:
                affordable += 1
            if affordable < len(requests):
                requests = requests[:affordable]
                each = sum(costs) / len(costs)
                reasons.append(
                    f"max cost ${config.max_cost:.2f} reached at the batch price (about ${each:.4f} per request)"
                )
        samples = samples[: len(requests)]
        estimate, queued = sum(costs[: len(requests)]), sum(tokens[: len(requests)])
        job_name = await _create_job(engine, requests, samples, estimate, queued) if requests else None
        if job_name is not None:
            submitted += [r.sha256 for r in requests]
            requests_left = None if requests_left is None else requests_left - len(requests)
            cost_left = None if cost_left is None else cost_left - estimate
            tokens_left -= queued
            log.info("submitted Gemini batch job %s with %d images", job_name, len(requests))
        if job_name is None or len(requests) < wanted:
            break
    if reasons:
        left = len([s for s in pending if s.sha256 not in run.failed]) - len(submitted)
        _note(engine, f"{'; '.join(dict.fromkeys(reasons))}: {left} images left for the next run")
    return submitted


def _estimated_cost(engine: TeacherEngine, input_tokens: int) -> float:
    """A request's cost at the batch price, from its real size (the estimator's tokens) and a typical answer."""
    model = engine.teacher.model_id
    return cost_usd(model, input_tokens, TYPICAL_OUTPUT_TOKENS, engine.config.prices, batch=True)


async def _create_job(
    engine: TeacherEngine, requests: list[TeacherRequest], samples: list[PoseSample], estimate: float, tokens: int
) -> str | None:
    """Record the job, upload its input file once (a large job), create it, and record its name; None (and a
    stop reason) when it cannot be created.

    A create that timed out or failed with a 5xx may have created the job all the same: it is looked
    up by its display name before the create is sent again. An input file uploaded once is recorded with
    the intent and used by every later try, this run's or the next's.
    """
    teacher, store, config = engine.teacher, engine.store, engine.config
    keys = [engine.key(s) for s in samples]
    display = display_name(keys)
    store.add_batch_intent(display, keys, samples, estimate, tokens)
    store.count_request(teacher.name, len(requests))  # counted before sending, as online requests are
    await asyncio.to_thread(store.make_durable)  # a crash from here on leaves a record to look the job up by
    rng = random.Random(0)
    job_name = None
    input_file = store.batch_input_file(display)
    for attempt in range(1, config.max_attempts + 1):
        try:
            if input_file is None and teacher.needs_upload(requests):
                input_file = await teacher.upload_batch_input(requests, display)
                store.batch_uploaded(display, input_file)
                await asyncio.to_thread(store.make_durable)
            job_name = await teacher.submit_batch(requests, display, input_file)
            break
        except TransientError as exc:
            try:
                job_name = await teacher.find_batch(display, store.batch_names(teacher.name))
            except TeacherError as lookup:
                _auth_check(engine, lookup, "listing batch jobs")
                _note(engine, f"submitting batch job {display} failed ({exc}) and it could not be looked up "
                              f"({lookup}); the next run looks it up before submitting again")  # fmt: skip
                return None
            if job_name is not None:
                log.warning("batch job %s was created although the create failed (%s)", display, exc)
                break
            if attempt == config.max_attempts:  # kept: the next run looks the job up again before submitting
                _note(engine, f"submitting batch job {display} failed ({exc}); the next run looks it up first")
                return None
            delay = retry_delay(attempt, config.backoff_initial_s, config.backoff_max_s, exc.retry_after, rng)
            await asyncio.sleep(delay)
        except PermanentError as exc:
            store.drop_batch_intent(display)
            _auth_check(engine, exc, "the batch job")
            _note(engine, f"Gemini refused the batch job: {exc}")
            return None
    if job_name is None:
        return None
    store.batch_created(display, job_name)
    await asyncio.to_thread(store.make_durable)
    engine.run.requests += len(requests)
    return job_name


def _record(engine: TeacherEngine, key: LabelKey, sample: PoseSample, result, *, report: bool) -> float:
    """Keep one entry's answer under its job's key, then decide the key from its answers; its cost. Reported in
    this run's outcomes when `report`: a label, or a failure that is not submitted again (a refusal, an image
    out of asks). Other failures are left for _pending, which submits them again within the ask limit."""
    store, run, limit = engine.store, engine.run, engine.config.max_asks_per_image
    model, prices = engine.teacher.model_id, engine.config.prices
    if isinstance(result, TransientError):  # not an answer: unbilled, and not counted as an ask
        stored = store.get(key)
        if stored is None:
            store.put(key, reason=f"batch request failed: {result}", attempts=1, checks=engine.checks)
        return 0.0
    if isinstance(result, BlockedAnswer):  # refused on content, and billed
        answer, billed = result.answer.model_copy(update={"unusable": str(result)}), True
    elif isinstance(result, TeacherError):  # refused for good, unbilled: an unusable answer, within the ask limit
        answer, billed = TeacherAnswer(text="", unusable=f"batch request failed: {result}"), False
    else:
        answer, billed = result, True
    cost = answer_cost(model, answer, prices, batch=True) if billed else 0.0
    _count_spend(engine, answer, cost)
    store.add_answer(key, answer, cost)
    label, reason, fixes = decide(store.answers_of(key), sample, engine.config.checks)
    store.settle(key, label=label, reason=reason, checks=engine.checks)
    asks = store.get(key).asks
    if report and label is not None:
        run.labeled[key.sha256] = label
        engine._count(fixes)
    elif report and (is_blocked(reason) or asks >= limit):
        run.failed[key.sha256] = reason if is_blocked(reason) else with_ask_limit(reason or "failed", asks, limit)
    return cost


def _count_spend(engine: TeacherEngine, answer: TeacherAnswer, cost: float) -> None:
    """Count one batch answer's tokens and cost (at the batch price) in the run."""
    engine.run.input_tokens += answer.input_tokens
    engine.run.cached_tokens += answer.cached_tokens
    engine.run.output_tokens += answer.output_tokens
    engine.run.cost_usd += cost


def _auth_check(engine: TeacherEngine, error: TeacherError, what: str) -> None:
    """A rejected key stops the run, naming the variable; the jobs stay recorded."""
    if isinstance(error, PermanentError) and is_auth_error(error):
        variable = TEACHER_KEYS.get(engine.teacher.name, "the API key")
        raise ConfigurationError(
            f"{engine.teacher.name} rejected {what} (HTTP {error.status}): check {variable}. "
            f"Every batch job stays recorded in {engine.store.path} and is collected once the key works."
        ) from None


def _note(engine: TeacherEngine, note: str) -> None:
    run = engine.run
    run.stop_reason = f"{run.stop_reason}; {note}" if run.stop_reason else note
