"""Choosing what a nightly relabel asks for again, within a request budget.

Images asked least come first (stale and never-asked ones before repeat failures), newest problem
first among equals; an image that has had its `max_asks_per_image` answers is not asked again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from motioncoach.audit import AuditBook, apply_audit
from motioncoach.config import LabelConfig
from motioncoach.labels.outcomes import LabelReport
from motioncoach.labels.store import LABELS_FILE
from motioncoach.pose.cache import CACHE_FILE_NAME, PoseCache
from motioncoach.records import KEYPOINT_NAMES, Keypoint, PoseSample
from motioncoach.teachers.keys import LABELER_TEACHERS
from motioncoach.teachers.labeling import label_with_teachers, stored_teacher
from motioncoach.teachers.store import LabelKey, LabelStore, StoredLabel

Problem = Literal["rejected", "disagreement", "invalid", "failed", "stale", "missing"]
ASK_AGAIN = ("rejected", "disagreement")  # a label is stored, and is asked for again all the same


class Candidate(BaseModel):
    """An image whose label needs asking for again, and why."""

    sample: PoseSample
    problem: Problem
    since: str  # when the problem was recorded; "" when never labeled
    detail: str = ""
    asks: int = 0  # answers taken under the current key (for a disagreement: the fewest of its teachers)

    def asks_left(self, config: LabelConfig) -> bool:
        return self.asks < config.max_asks_per_image


def kept_samples(cache_path: Path) -> list[PoseSample]:
    """Every image the pose filter kept whose file is still there, once per content (newest entry)."""
    newest: dict[str, object] = {}
    for entry in PoseCache.load(cache_path).entries.values():
        if entry.outcome == "kept" and entry.keypoints and Path(entry.source_path).is_file():
            if entry.sha256 not in newest or entry.created_at > newest[entry.sha256].created_at:
                newest[entry.sha256] = entry
    samples = []
    for entry in newest.values():
        by_name = {name: (x, y, conf) for name, x, y, conf in entry.keypoints}
        samples.append(
            PoseSample(
                sha256=entry.sha256,
                source_path=Path(entry.source_path),
                activity=entry.activity,
                width=entry.width,
                height=entry.height,
                box_conf=entry.box_conf or 0.0,
                keypoints=tuple(
                    Keypoint(name=n, x=by_name[n][0], y=by_name[n][1], conf=by_name[n][2]) for n in KEYPOINT_NAMES
                ),
            )
        )
    return sorted(samples, key=lambda s: str(s.source_path))


def _disagreements(data_dir: Path) -> dict[str, str]:
    """sha256 -> reason, for images the last consensus run found the teachers disagreeing on."""
    path = Path(data_dir) / LABELS_FILE
    if not path.exists():
        return {}
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {r["sha256"]: r.get("reason") or "" for r in rows if r.get("status") == "disagreed"}


def find_candidates(
    samples: list[PoseSample], config: LabelConfig, store: LabelStore, data_dir: Path
) -> list[Candidate]:
    """Every sample with a problem under the current prompt, schema and model: the least asked first, then
    the newest problem first."""
    disagreed = _disagreements(data_dir) if config.labeler == "consensus" else {}
    book = AuditBook.read(data_dir)
    to_relabel = book.to_relabel()
    candidates = []
    for sample in samples:
        worst: Candidate | None = None
        asks = []
        for name in LABELER_TEACHERS[config.labeler]:
            teacher = stored_teacher(name, config)
            key = LabelKey.of(sample, name, teacher.model_id, teacher.generation_params())
            stored = store.get(key)
            asks.append(stored.asks if stored is not None else 0)
            found = _problem(sample, key, stored, store)
            if sample.sha256 in to_relabel and stored is not None and stored.label is not None:
                verdict = book.keeps_out(sample.sha256, stored.label)  # people rejected the label it still has
                if verdict is not None:
                    found = Candidate(sample=sample, problem="rejected", since=verdict.when, detail=verdict.reason,
                                      asks=stored.asks)  # fmt: skip
            if found and (worst is None or found.since > worst.since):
                worst = found
        if worst is None and sample.sha256 in disagreed:
            worst = Candidate(
                sample=sample, problem="disagreement", since="~", detail=disagreed[sample.sha256], asks=min(asks)
            )
        if worst:
            candidates.append(worst)
    # ISO timestamps sort by time; "~" (a disagreement found in the last run) sorts newest of all.
    newest_first = sorted(candidates, key=lambda c: c.since, reverse=True)
    return sorted(newest_first, key=lambda c: c.asks)  # stable: newest first among images asked as often


def _problem(sample: PoseSample, key: LabelKey, stored: StoredLabel | None, store: LabelStore) -> Candidate | None:
    if stored is not None:
        if stored.status == "labeled":
            return None
        problem = "invalid" if (stored.reason or "").startswith("invalid answer") else "failed"
        return Candidate(
            sample=sample, problem=problem, since=stored.updated_at, detail=stored.reason or "", asks=stored.asks
        )
    older = store.other_versions(sample.sha256, key.teacher, key)
    if older:
        model_id, prompt, _, updated = older[0]
        return Candidate(
            sample=sample, problem="stale", since=updated, detail=f"labeled by {model_id} with prompt {prompt}"
        )
    return Candidate(sample=sample, problem="missing", since="")


def within_budget(candidates: list[Candidate], config: LabelConfig) -> list[Candidate]:
    """Those with asks left, as many as the daily request budget pays for: each costs a request per teacher."""
    askable = [c for c in candidates if c.asks_left(config)]
    if config.daily_budget is None:
        return askable
    per_image = len(LABELER_TEACHERS[config.labeler]) or 1
    return askable[: config.daily_budget // per_image]


def keep_stale_labels(report: LabelReport, store: LabelStore) -> LabelReport:
    """Images without a current label keep their newest older one, marked stale, until relabeled.

    A new prompt or model must not shrink the dataset overnight: the relabel replaces stale labels
    as its budget allows. Consensus labels are not carried over: agreement needs both current ones.
    """
    outcomes = []
    for outcome in report.outcomes:
        older = store.newest_label(outcome.sample.sha256, outcome.labeler) if outcome.status == "deferred" else None
        if older is None:
            outcomes.append(outcome)
            continue
        label, model_id, prompt = older
        outcomes.append(
            outcome.model_copy(
                update={"status": "labeled", "label": label, "reason": f"stale: {model_id}, prompt {prompt}"}
            )
        )
    return LabelReport(outcomes=outcomes, usage=report.usage)


class RelabelResult(BaseModel):
    """What one relabel pass found and asked for."""

    samples: list[PoseSample]  # every kept image still on disk
    candidates: list[Candidate]  # those with a problem, the least asked first
    chosen: list[Candidate]  # those that fit today's budget, asked for again
    statuses: dict[str, str]  # sha256 -> what became of a chosen image this run


def relabel_data_dir(
    config: LabelConfig,
    data_dir: Path,
    *,
    store_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RelabelResult:
    """Ask the teachers again for the kept images whose labels are stale, invalid, failed or disputed.

    store_dir holds the label store when it is not data_dir (a working copy on local disk, on Modal).
    """
    data_dir = Path(data_dir)
    store_dir = Path(store_dir or data_dir)
    samples = kept_samples(data_dir / CACHE_FILE_NAME)
    store = LabelStore.in_data_dir(store_dir)
    try:
        candidates = find_candidates(samples, config, store, data_dir)
    finally:
        store.close()
    chosen = within_budget(candidates, config)
    refresh = frozenset(c.sample.sha256 for c in chosen if c.problem in ASK_AGAIN)
    statuses: dict[str, str] = {}
    if chosen:
        report = label_with_teachers(
            [c.sample for c in chosen], config, store_dir, progress, refresh=refresh, rebuy=True
        )  # the relabel is what replaces stale labels, within its budget
        statuses = {o.sample.sha256: o.status for o in report.outcomes}
    return RelabelResult(samples=samples, candidates=candidates, chosen=chosen, statuses=statuses)


def current_labels(
    samples: list[PoseSample], config: LabelConfig, store_dir: Path, data_dir: Path | None = None
) -> LabelReport:
    """The label every kept image has now, read from the store without sending anything; a stale
    label stays in use until its replacement is there, and a label people rejected is kept out."""
    report = label_with_teachers(samples, config, Path(store_dir), send=False)
    store = LabelStore.in_data_dir(store_dir)
    try:
        return apply_audit(keep_stale_labels(report, store), AuditBook.read(Path(data_dir or store_dir)))
    finally:
        store.close()
