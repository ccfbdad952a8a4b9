"""Labeling with the paid teachers: one of them, or both for consensus."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from motioncoach.config import LabelConfig
from motioncoach.labels.outcomes import LabelOutcome, LabelReport
from motioncoach.records import PoseSample
from motioncoach.teachers.base import Teacher
from motioncoach.teachers.capabilities import gemini_model_name, thinking_params
from motioncoach.teachers.consensus import compare
from motioncoach.teachers.engine import TeacherEngine, TeacherRun, is_blocked
from motioncoach.teachers.estimate import check_rebuy
from motioncoach.teachers.keys import LABELER_TEACHERS, api_key
from motioncoach.teachers.pricing import check_prices, is_priced
from motioncoach.teachers.store import STORE_FILE, LabelKey, LabelStore

OPENROUTER_DEFAULT_TEMPERATURE = 0.2


def build_teacher(name: str, config: LabelConfig) -> Teacher:
    """A client for one teacher, its key read from the environment."""
    if name == "gemini":
        from motioncoach.teachers.gemini import GeminiTeacher

        return GeminiTeacher(
            model_id=config.gemini_model,
            api_key=api_key("gemini"),
            thinking_level=config.gemini_thinking_level,
            thinking_budget=config.gemini_thinking_budget,
            temperature=config.temperature,
            timeout_s=config.timeout_s,
        )
    from motioncoach.teachers.openrouter import OpenRouterTeacher

    return OpenRouterTeacher(
        model_id=config.openrouter_model,
        api_key=api_key("openrouter"),
        temperature=OPENROUTER_DEFAULT_TEMPERATURE if config.temperature is None else config.temperature,
        timeout_s=config.timeout_s,
    )


@dataclass(frozen=True)
class StoredTeacher:
    """A teacher as the label store knows it: enough to find its labels, unable to send anything."""

    name: str
    model_id: str
    params: dict

    def generation_params(self) -> dict:
        return self.params

    async def ask(self, request):  # pragma: no cover - the engine never sends with send=False
        raise AssertionError("a stored teacher cannot be asked")

    async def aclose(self) -> None:
        return None


def teacher_models(config: LabelConfig) -> dict[str, str]:
    """teacher name -> model id, for the labeler's teachers."""
    models = {"gemini": config.gemini_model, "openrouter": config.openrouter_model}
    return {name: models[name] for name in LABELER_TEACHERS[config.labeler]}


def check_label_config(config: LabelConfig) -> None:
    """What can be refused before anything is paid: a spending cap on a model without a price."""
    check_prices(teacher_models(config), config.prices, config.max_cost)


def stored_teacher(name: str, config: LabelConfig) -> StoredTeacher:
    """The identity build_teacher's client would have, without needing its API key."""
    if name == "gemini":
        model = gemini_model_name(config.gemini_model)
        thinking = thinking_params(model, config.gemini_thinking_level, config.gemini_thinking_budget)
        return StoredTeacher(name, model, {**thinking, "temperature": config.temperature})
    temperature = OPENROUTER_DEFAULT_TEMPERATURE if config.temperature is None else config.temperature
    return StoredTeacher(name, config.openrouter_model, {"temperature": temperature})


def labels_complete(samples: Sequence[PoseSample], config: LabelConfig, data_dir: Path) -> bool:
    """Whether the store settles every sample for every teacher under the current prompts: a label, a
    refusal on content, or a failure out of asks (labeling.max_asks_per_image). A run would send nothing."""
    store_path = Path(data_dir) / STORE_FILE
    if not store_path.exists():
        return not samples
    store = LabelStore(store_path)
    try:
        for name in LABELER_TEACHERS[config.labeler]:
            teacher = stored_teacher(name, config)
            for sample in samples:
                key = LabelKey.of(sample, teacher.name, teacher.model_id, teacher.generation_params())
                stored = store.get(key)
                if stored is None:
                    return False
                settled = is_blocked(stored.reason) or stored.asks >= config.max_asks_per_image
                if stored.status != "labeled" and not settled:
                    return False
        return True
    finally:
        store.close()


def label_with_teachers(
    samples: Sequence[PoseSample],
    config: LabelConfig,
    data_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    teachers: list[Teacher] | None = None,
    *,
    refresh: frozenset[str] = frozenset(),
    send: bool = True,
    rebuy: bool = False,
) -> LabelReport:
    """Label every sample with the configured teacher(s), reusing every label already in the store.

    refresh: images to ask again even though a label is stored. send=False: answer from the store
    only (what is not there is reported deferred), so nothing is paid. rebuy: buy again what the store
    holds under an older request without the guard asking first (the nightly relabel chose them).
    """
    if send:
        check_label_config(config)
    store = LabelStore.in_data_dir(data_dir)
    try:
        if send and not rebuy:  # before any client exists: a run that would buy much again stops here
            asked = teachers or [stored_teacher(name, config) for name in LABELER_TEACHERS[config.labeler]]
            check_rebuy(samples, asked, store, config)
        if teachers is None:
            make = build_teacher if send else stored_teacher
            teachers = [make(name, config) for name in LABELER_TEACHERS[config.labeler]]
        runs = asyncio.run(_run_all(samples, teachers, store, config, progress, refresh, send))
    finally:
        store.close()
    if len(runs) == 1:
        outcomes = [_single(sample, runs[0]) for sample in samples]
    else:
        outcomes = [_consensus(sample, runs[0], runs[1], config) for sample in samples]
    usage = [
        {
            "teacher": run.teacher,
            "model_id": run.model_id,
            "requests": run.requests,
            "from_store": run.from_store,
            "input_tokens": run.input_tokens,
            "cached_tokens": run.cached_tokens,
            "output_tokens": run.output_tokens,
            "cost_usd": round(run.cost_usd, 6),
            "estimate_usd": run.estimate_usd,
            "fixed": sum(run.fixes.values()),
            "fixes": dict(run.fixes),
            "priced": is_priced(run.model_id, config.prices),
            "stop_reason": run.stop_reason,
        }
        for run in runs
    ]
    return LabelReport(outcomes=outcomes, usage=usage)


async def _run_all(samples, teachers, store, config, progress, refresh, send) -> list[TeacherRun]:
    done = [0] * len(teachers)

    def tracker(index: int):
        def report(count: int, total: int) -> None:
            done[index] = count
            if progress:
                progress(sum(done), total * len(teachers))

        return report

    try:
        engines = [TeacherEngine(t, store, config, refresh=refresh, send=send) for t in teachers]
        if not send:
            return list(await asyncio.gather(*(e.label_all(samples, tracker(i)) for i, e in enumerate(engines))))
        from motioncoach.teachers.batch import collect_then_ask, run_batch, takes_batches

        if config.batch:  # the teachers without a Batch API (OpenRouter, for consensus) answer online
            return [
                await (
                    run_batch(e, samples, wait=config.wait) if takes_batches(e.teacher)
                    else collect_then_ask(e, samples, tracker(i))
                )
                for i, e in enumerate(engines)
            ]  # fmt: skip
        return list(await asyncio.gather(*(collect_then_ask(e, samples, tracker(i)) for i, e in enumerate(engines))))
    finally:
        await _close(teachers)


async def _close(teachers) -> None:
    for teacher in teachers:
        await teacher.aclose()


def _single(sample: PoseSample, run: TeacherRun) -> LabelOutcome:
    meta = {"sample": sample, "labeler": run.teacher, "model_id": run.model_id}
    if sample.sha256 in run.labeled:
        return LabelOutcome(**meta, status="labeled", label=run.labeled[sample.sha256])
    if sample.sha256 in run.failed:
        return LabelOutcome(**meta, status="failed", reason=run.failed[sample.sha256])
    return LabelOutcome(**meta, status="deferred", reason=run.stop_reason or "left for a later run")


def _consensus(sample: PoseSample, first: TeacherRun, second: TeacherRun, config: LabelConfig) -> LabelOutcome:
    meta = {"sample": sample, "labeler": "consensus", "model_id": f"{first.model_id}+{second.model_id}"}
    for run in (first, second):
        if sample.sha256 in run.failed:
            return LabelOutcome(**meta, status="failed", reason=f"{run.teacher}: {run.failed[sample.sha256]}")
    if sample.sha256 not in first.labeled or sample.sha256 not in second.labeled:
        reason = first.stop_reason or second.stop_reason or "left for a later run"
        return LabelOutcome(**meta, status="deferred", reason=reason)
    label = first.labeled[sample.sha256]
    agreement = compare(
        label, second.labeled[sample.sha256], sample, config.agreement_score_tolerance, config.agreement_angle_degrees
    )
    if agreement.agree or config.keep_disagreements:
        return LabelOutcome(**meta, status="labeled", label=label, agreement=agreement.model_dump())
    return LabelOutcome(
        **meta, status="disagreed", label=label, reason="; ".join(agreement.reasons), agreement=agreement.model_dump()
    )
