"""Gemini's Batch API: submit on one run, collect on a later one, at half the price.

Job names are kept in the label store, so a run that collects needs nothing but the data dir. The
answers go through the same validation and into the same store as synchronous ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from motioncoach.errors import ConfigurationError
from motioncoach.records import PoseSample
from motioncoach.teachers.base import TeacherError
from motioncoach.teachers.engine import TeacherEngine, TeacherRun
from motioncoach.teachers.pricing import cost_usd
from motioncoach.teachers.request import build_request
from motioncoach.teachers.validate import InvalidAnswer, parse_answer

log = logging.getLogger(__name__)


async def run_batch(engine: TeacherEngine, samples: Sequence[PoseSample]) -> TeacherRun:
    """Collect finished jobs, then submit one job for every image that has neither label nor job."""
    teacher, store, run = engine.teacher, engine.store, engine.run
    if not hasattr(teacher, "submit_batch"):
        raise ConfigurationError(f"--batch works with --labeler gemini only, not {teacher.name}.")
    by_sha = {s.sha256: s for s in samples}
    waiting: set[str] = set()
    for job_name, shas in store.open_batches(teacher.name, teacher.model_id):
        try:
            results = await teacher.collect_batch(job_name)
        except TeacherError as exc:  # the whole job failed, expired or was cancelled: submit its images again
            log.warning("Gemini batch job %s ended without results (%s); resubmitting its images", job_name, exc)
            store.close_batch(job_name, "failed")
            continue
        if results is None:
            waiting.update(shas)
            continue
        for sha, result in results.items():
            if sha in by_sha:
                _record(engine, by_sha[sha], result)
        store.close_batch(job_name, "collected")

    to_submit = []
    for sample in samples:
        stored = store.get(engine.key(sample))
        if stored is not None and stored.status == "labeled":
            if sample.sha256 not in run.labeled:
                run.from_store += 1
            run.labeled[sample.sha256] = stored.label
        elif sample.sha256 not in waiting and sample.sha256 not in run.failed:
            to_submit.append(sample)
    if to_submit:
        requests = await asyncio.gather(*(asyncio.to_thread(build_request, s) for s in to_submit))
        job_name = await teacher.submit_batch(list(requests))
        store.add_batch(job_name, [engine.key(s) for s in to_submit])
        run.requests += len(to_submit)
        waiting.update(s.sha256 for s in to_submit)
    run.deferred = sorted(waiting - run.labeled.keys())
    if run.deferred:
        run.stop_reason = f"{len(run.deferred)} images wait in Gemini batch jobs; a later run collects them"
    return run


def _record(engine: TeacherEngine, sample: PoseSample, result) -> None:
    key = engine.key(sample)
    if isinstance(result, TeacherError):
        reason = f"batch request failed: {result}"
        engine.store.put(key, reason=reason)
        engine.run.failed[sample.sha256] = reason
        return
    prices = engine.config.prices
    cost = cost_usd(engine.teacher.model_id, result.input_tokens, result.output_tokens, prices, batch=True)
    engine.run.input_tokens += result.input_tokens
    engine.run.output_tokens += result.output_tokens
    engine.run.cost_usd += cost
    common = {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens, "cost_usd": cost}
    try:
        label = parse_answer(result.text, sample)
    except InvalidAnswer as exc:
        reason = f"invalid answer: {exc}"
        engine.store.put(key, reason=reason, **common)
        engine.run.failed[sample.sha256] = reason
        return
    engine.store.put(key, label=label, **common)
    engine.run.labeled[sample.sha256] = label
