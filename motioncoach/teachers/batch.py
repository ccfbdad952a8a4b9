"""Gemini's Batch API: submit on one run, collect on a later one, at half the price.

Job names are kept in the label store, so a run that collects needs nothing but the data dir. The
answers go through the same validation and into the same store as synchronous ones. An image is in
at most one live job; a job that fails or expires gives its images back to the next submission.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Sequence

from motioncoach.errors import ConfigurationError
from motioncoach.records import PoseSample
from motioncoach.teachers.base import BlockedAnswer, PermanentError, TeacherError, TransientError
from motioncoach.teachers.engine import KEY_VARIABLES, TeacherEngine, TeacherRun, is_auth_error, is_blocked
from motioncoach.teachers.pacing import retry_delay
from motioncoach.teachers.pricing import TYPICAL_INPUT_TOKENS, TYPICAL_OUTPUT_TOKENS, cost_usd
from motioncoach.teachers.request import build_request
from motioncoach.teachers.validate import InvalidAnswer, parse_answer

log = logging.getLogger(__name__)


async def run_batch(engine: TeacherEngine, samples: Sequence[PoseSample]) -> TeacherRun:
    """Collect finished jobs, then submit jobs for every image that has neither a label nor a live job."""
    teacher, run = engine.teacher, engine.run
    if not hasattr(teacher, "submit_batch"):
        raise ConfigurationError(f"--batch works with --labeler gemini only, not {teacher.name}.")
    waiting = await _collect(engine, {s.sha256: s for s in samples})
    pending = _pending(engine, samples, waiting)
    allowed = _allowed_by_budget(engine, len(pending))
    submitted = await _submit(engine, pending[:allowed])
    waiting.update(submitted)
    run.deferred = sorted(waiting | {s.sha256 for s in pending[len(submitted) :]})
    if waiting:
        jobs = [f"{name} ({len(shas)})" for name, shas in engine.store.open_batches(teacher.name, teacher.model_id)]
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
    if not hasattr(teacher, "collect_batch") or not engine.store.open_batches(teacher.name, teacher.model_id):
        return await engine.label_all(samples, progress)
    waiting = await _collect(engine, {s.sha256: s for s in samples})
    done = engine.run.labeled.keys() | engine.run.failed.keys()
    run = await engine.label_all([s for s in samples if s.sha256 not in waiting | done], progress)
    if waiting:
        run.deferred = sorted(set(run.deferred) | waiting)
        collect = f"{len(waiting)} images wait in Gemini batch jobs submitted earlier; a later run collects them"
        run.stop_reason = f"{collect}; {run.stop_reason}" if run.stop_reason else collect
    return run


async def _collect(engine: TeacherEngine, by_sha: dict[str, PoseSample]) -> set[str]:
    """Record the answers of finished jobs; the images of jobs still running."""
    teacher, store = engine.teacher, engine.store
    waiting: set[str] = set()
    for job_name, shas in store.open_batches(teacher.name, teacher.model_id):
        try:
            results = await teacher.collect_batch(job_name)
        except PermanentError as exc:  # the whole job failed, expired or was cancelled: submit its images again
            log.warning("Gemini batch job %s ended without results (%s); resubmitting its images", job_name, exc)
            store.close_batch(job_name, "failed")
            continue
        except TransientError as exc:  # cannot ask now: the job stays open for the next run
            log.warning("could not ask Gemini about batch job %s (%s); asking again on the next run", job_name, exc)
            waiting.update(shas)
            continue
        if results is None:
            waiting.update(shas)
            continue
        missing = [sha for sha in shas if sha not in results.answers]
        if results.unmatched or missing:
            log.warning(
                "Gemini batch job %s: %d entries named no image and %d images had no entry; those are submitted again",
                job_name, results.unmatched, len(missing),
            )  # fmt: skip
        for sha, result in results.answers.items():
            if sha in by_sha:
                _record(engine, by_sha[sha], result)
        store.close_batch(job_name, "collected")
    return waiting


def _pending(engine: TeacherEngine, samples: Sequence[PoseSample], waiting: set[str]) -> list[PoseSample]:
    """Images to submit: no label, no live job, no failure this run, and not refused on content before."""
    run, pending = engine.run, []
    for sample in samples:
        stored = engine.store.get(engine.key(sample))
        if stored is not None and stored.status == "labeled" and sample.sha256 not in engine.refresh:
            if sample.sha256 not in run.labeled:
                run.from_store += 1
            run.labeled[sample.sha256] = stored.label
        elif stored is not None and is_blocked(stored.reason) and sample.sha256 not in engine.refresh:
            run.failed[sample.sha256] = stored.reason
        elif sample.sha256 not in waiting and sample.sha256 not in run.failed and sample.sha256 not in run.labeled:
            pending.append(sample)
    return pending


def _allowed_by_budget(engine: TeacherEngine, wanted: int) -> int:
    """How many requests the daily budget and max cost let this run submit; says why when fewer."""
    config, run, name = engine.config, engine.run, engine.teacher.name
    allowed, reasons = wanted, []
    if config.daily_budget is not None:
        left = max(0, config.daily_budget - engine.store.requests_today(name))
        if left < allowed:
            allowed = left
            reasons.append(f"daily budget of {config.daily_budget} {name} requests is spent")
    if config.max_cost is not None:
        each = cost_usd(engine.teacher.model_id, TYPICAL_INPUT_TOKENS, TYPICAL_OUTPUT_TOKENS, config.prices, batch=True)
        affordable = math.floor(config.max_cost / each) if each > 0 else wanted
        if affordable < allowed:
            allowed = affordable
            reasons.append(
                f"max cost ${config.max_cost:.2f} reached at the batch price (about ${each:.4f} per request)"
            )
    if allowed < wanted:
        run.stop_reason = f"{'; '.join(reasons)}: {wanted - allowed} images left for the next run"
    return allowed


async def _submit(engine: TeacherEngine, pending: list[PoseSample]) -> list[str]:
    """Submit jobs of at most batch_job_requests images; the sha256 of every image now in a job."""
    submitted: list[str] = []
    size = engine.config.batch_job_requests
    for start in range(0, len(pending), size):
        chunk = pending[start : start + size]
        requests = []
        # Encoded in the default thread pool, several at once, as the online path does.
        built = await asyncio.gather(*(asyncio.to_thread(build_request, s) for s in chunk), return_exceptions=True)
        for sample, request in zip(chunk, built, strict=True):
            if isinstance(request, OSError):
                reason = f"image unreadable: {request}"
                engine.store.put(engine.key(sample), reason=reason, attempts=0)
                engine.run.failed[sample.sha256] = reason
            elif isinstance(request, BaseException):
                raise request
            else:
                requests.append(request)
        if not requests:
            continue
        job_name = await _create_job(engine, requests)
        if job_name is None:
            break
        engine.store.count_request(engine.teacher.name, len(requests))
        by_sha = {s.sha256: s for s in chunk}
        engine.store.add_batch(job_name, [engine.key(by_sha[r.sha256]) for r in requests])
        engine.run.requests += len(requests)
        submitted += [r.sha256 for r in requests]
        log.info("submitted Gemini batch job %s with %d images", job_name, len(requests))
    return submitted


async def _create_job(engine: TeacherEngine, requests) -> str | None:
    """The new job's name, retrying transient errors; None (and a stop reason) when it cannot be created."""
    config, rng = engine.config, random.Random(0)
    for attempt in range(1, config.max_attempts + 1):
        try:
            return await engine.teacher.submit_batch(requests)
        except TransientError as exc:
            if attempt == config.max_attempts:
                engine.run.stop_reason = f"submitting a batch job failed ({exc}); the next run submits the rest"
                return None
            delay = retry_delay(attempt, config.backoff_initial_s, config.backoff_max_s, exc.retry_after, rng)
            await asyncio.sleep(delay)
        except PermanentError as exc:
            if is_auth_error(exc):
                variable = KEY_VARIABLES.get(engine.teacher.name, "the API key")
                raise ConfigurationError(
                    f"{engine.teacher.name} rejected the batch job (HTTP {exc.status}): check {variable}."
                ) from None
            engine.run.stop_reason = f"Gemini refused the batch job: {exc}"
            return None
    return None


def _record(engine: TeacherEngine, sample: PoseSample, result) -> None:
    key = engine.key(sample)
    common: dict = {}
    if isinstance(result, BlockedAnswer):
        common = _spend(engine, result.answer.input_tokens, result.answer.output_tokens)
    if isinstance(result, TeacherError):
        reason = str(result) if isinstance(result, BlockedAnswer) else f"batch request failed: {result}"
        engine.store.put(key, reason=reason, **common)
        engine.run.failed[sample.sha256] = reason
        return
    common = _spend(engine, result.input_tokens, result.output_tokens)
    try:
        label = parse_answer(result.text, sample)
    except InvalidAnswer as exc:
        reason = f"invalid answer: {exc}"
        engine.store.put(key, reason=reason, **common)
        engine.run.failed[sample.sha256] = reason
        return
    engine.store.put(key, label=label, **common)
    engine.run.labeled[sample.sha256] = label


def _spend(engine: TeacherEngine, input_tokens: int, output_tokens: int) -> dict:
    """Count one batch answer's tokens and cost (at the batch price) in the run; the store's columns."""
    cost = cost_usd(engine.teacher.model_id, input_tokens, output_tokens, engine.config.prices, batch=True)
    engine.run.input_tokens += input_tokens
    engine.run.output_tokens += output_tokens
    engine.run.cost_usd += cost
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cost_usd": cost}
