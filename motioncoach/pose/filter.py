"""Keep the photos that show exactly one well-detected person; every outcome is cached by content."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from motioncoach.config import PoseFilterConfig
from motioncoach.pose.cache import CacheEntry, PoseCache
from motioncoach.pose.image_check import DecodedImage, check_image
from motioncoach.pose.weights import configure_ultralytics, resolve_weights, weights_sha256
from motioncoach.records import KEYPOINT_NAMES, ImageRecord, Keypoint, PoseSample

log = logging.getLogger(__name__)

NO_SHOULDERS = "no body: both shoulders are needed beyond the face"
NO_PERSON = "no person"

# One loaded model per weights file for the whole process; Ultralytics models are not thread-safe.
_MODELS: dict[str, Any] = {}
_YOLO_LOCK = threading.Lock()


class Rejection(BaseModel):
    """An image the filter dropped, and why."""

    sha256: str
    source_path: Path
    activity: str
    reason: str


class PoseFilterReport(BaseModel):
    """The filter's result: one outcome per distinct image content, sorted by source path."""

    kept: list[PoseSample]
    rejected: list[Rejection]
    newly_processed: int
    from_cache: int

    def counts_by_activity(self) -> dict[str, dict[str, int]]:
        """{activity: {"kept": n, "rejected": n}}, activities sorted."""
        counts: dict[str, dict[str, int]] = defaultdict(lambda: {"kept": 0, "rejected": 0})
        for sample in self.kept:
            counts[sample.activity]["kept"] += 1
        for rejection in self.rejected:
            counts[rejection.activity]["rejected"] += 1
        return {activity: counts[activity] for activity in sorted(counts)}


def filter_poses(
    records: Sequence[ImageRecord],
    config: PoseFilterConfig,
    cache_path: Path,
    progress: Callable[[int, int], None] | None = None,
) -> PoseFilterReport:
    """Evaluate new images with YOLO in batches, reuse cached outcomes for the rest."""
    weights = resolve_weights(config.weights)
    fingerprint = config.cache_fingerprint(weights_sha256(weights))
    cache = PoseCache.load(cache_path)
    groups = _group_by_content(records)

    outcomes: dict[str, CacheEntry] = {}
    new: list[list[ImageRecord]] = []
    for sha256, group in groups.items():
        entry = cache.lookup(sha256, fingerprint)
        if entry is None:
            new.append(group)
            continue
        if any([entry.add_path(str(r.path)) for r in group]):  # a list: record every new path
            cache.record(fingerprint, entry)
        outcomes[sha256] = entry

    for start in range(0, len(new), config.batch_size):
        for entry, cacheable in _evaluate(new[start : start + config.batch_size], config, weights):
            outcomes[entry.sha256] = entry
            if cacheable:
                cache.record(fingerprint, entry)
        cache.save()  # after every batch: a crash loses at most this one
        if progress:
            progress(min(start + config.batch_size, len(new)), len(new))
    cache.save()  # new duplicate paths of cached images

    report = _report(groups, outcomes, newly_processed=len(new), from_cache=len(groups) - len(new))
    log.info(
        "pose filter: %d kept, %d rejected (%d evaluated, %d from cache)",
        len(report.kept),
        len(report.rejected),
        report.newly_processed,
        report.from_cache,
    )
    return report


def _group_by_content(records: Sequence[ImageRecord]) -> dict[str, list[ImageRecord]]:
    """Records by sha256, each group sorted by path, groups in order of their first path."""
    groups: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in sorted(records, key=lambda r: str(r.path)):
        groups[record.sha256].append(record)
    return dict(groups)


def _evaluate(batch: list[list[ImageRecord]], config: PoseFilterConfig, weights: Path) -> list[tuple[CacheEntry, bool]]:
    """Decode a batch and run YOLO once on the decodable images; (entry, cacheable) per image."""
    judged: list[tuple[CacheEntry, bool]] = []
    pending: list[list[ImageRecord]] = []
    bgr: list[np.ndarray] = []
    for group in batch:
        image, cacheable = _read(group[0], config.max_pixels)
        if isinstance(image, str):
            judged.append((_entry(group, weights, outcome="rejected", reason=image), cacheable))
            continue
        bgr.append(to_bgr(image))  # converting now lets the RGB copy go: one copy per image
        pending.append(group)
    for group, fields in zip(pending, detect_poses(bgr, config, weights), strict=True):
        judged.append((_entry(group, weights, **fields), True))
    return judged


def to_bgr(image: DecodedImage) -> np.ndarray:
    """The decoded pixels in OpenCV's BGR order, as Ultralytics wants them."""
    import cv2  # ships with ultralytics

    return cv2.cvtColor(image.rgb, cv2.COLOR_RGB2BGR)


def detect_poses(bgr_images: Sequence[np.ndarray], config: PoseFilterConfig, weights: Path) -> list[dict[str, Any]]:
    """YOLO pose on upright BGR images in one call, each judged by the filter's rules: the cache fields
    (outcome, reason, persons, box_conf, keypoints, width, height) per image. The dataset's pose filter
    and the served model's pose detection are this one function."""
    if not bgr_images:
        return []
    with _YOLO_LOCK:
        # rect=False letterboxes every image to the same square, so an outcome never depends on
        # which images shared its batch (the cache fingerprint leaves batch_size out).
        results = _model(weights).predict(
            list(bgr_images), conf=config.person_conf, imgsz=config.imgsz, device=config.device, rect=False,
            verbose=False,
        )  # fmt: skip
    pairs = zip(bgr_images, results, strict=True)
    return [_judge(result, image.shape[1], image.shape[0], config) for image, result in pairs]


def _read(record: ImageRecord, max_pixels: int) -> tuple[DecodedImage | str, bool]:
    """Decode a record's file; the bool says whether the outcome belongs to its content (cacheable)."""
    try:
        data = record.path.read_bytes()
    except OSError as exc:  # missing or forbidden now: says nothing about the content
        return f"unreadable: {exc}", False
    if hashlib.sha256(data).hexdigest() != record.sha256:
        return "changed since it was listed (sha256 differs)", False
    return check_image(data, max_pixels), True


def _judge(result: Any, width: int, height: int, config: PoseFilterConfig) -> dict[str, Any]:
    """Cache fields from one YOLO result: kept only with one person and enough confident keypoints."""
    box_conf = result.boxes.conf.cpu().numpy()
    persons = np.flatnonzero(box_conf >= config.person_conf)
    fields: dict[str, Any] = {"persons": len(persons), "width": width, "height": height}
    if len(persons):
        fields["box_conf"] = round(float(box_conf[persons].max()), 4)
    if len(persons) != 1:
        reason = NO_PERSON if not len(persons) else f"several people ({len(persons)})"
        return {**fields, "outcome": "rejected", "reason": reason}
    points = result.keypoints.data[persons[0]].cpu().numpy()  # 17 x (x, y, conf) in pixels
    confident = int((points[:, 2] > config.keypoint_conf).sum())
    if confident < config.min_keypoints:
        reason = f"too few keypoints ({confident} < {config.min_keypoints})"
        return {**fields, "outcome": "rejected", "reason": reason}
    shoulders = [KEYPOINT_NAMES.index(f"{side}_shoulder") for side in ("left", "right")]
    if config.require_shoulders and not all(points[i, 2] > config.keypoint_conf for i in shoulders):
        return {**fields, "outcome": "rejected", "reason": NO_SHOULDERS}
    xs = np.clip(points[:, 0] / width, 0, 1)
    ys = np.clip(points[:, 1] / height, 0, 1)
    keypoints = [
        (name, round(float(x), 5), round(float(y), 5), round(float(c), 4))
        for name, x, y, c in zip(KEYPOINT_NAMES, xs, ys, points[:, 2], strict=True)
    ]
    return {**fields, "outcome": "kept", "keypoints": keypoints}


def _entry(group: list[ImageRecord], weights: Path, **fields: Any) -> CacheEntry:
    first, *others = group
    return CacheEntry(
        sha256=first.sha256,
        source_path=str(first.path),
        duplicates=[str(r.path) for r in others],
        activity=first.activity,
        weights=weights.name,
        **fields,
    )


def _model(weights: Path) -> Any:
    """The YOLO model for these weights, loaded on first use only."""
    key = str(weights)
    if key not in _MODELS:
        configure_ultralytics()
        from ultralytics import YOLO  # heavy: imported only when an image needs YOLO

        _MODELS[key] = YOLO(key, task="pose")
    return _MODELS[key]


def _report(
    groups: dict[str, list[ImageRecord]], outcomes: dict[str, CacheEntry], newly_processed: int, from_cache: int
) -> PoseFilterReport:
    kept: list[PoseSample] = []
    rejected: list[Rejection] = []
    for sha256, group in groups.items():
        entry = outcomes[sha256]
        # Name the image by the path the cache knows when this call has it, else by this call's first.
        record = next((r for r in group if str(r.path) == entry.source_path), group[0])
        if entry.outcome == "kept":
            kept.append(_sample(record, entry))
        else:
            rejected.append(
                Rejection(sha256=sha256, source_path=record.path, activity=record.activity, reason=entry.reason or "")
            )
    return PoseFilterReport(
        kept=sorted(kept, key=lambda s: str(s.source_path)),
        rejected=sorted(rejected, key=lambda r: str(r.source_path)),
        newly_processed=newly_processed,
        from_cache=from_cache,
    )


def _sample(record: ImageRecord, entry: CacheEntry) -> PoseSample:
    return PoseSample(
        sha256=entry.sha256,
        source_path=record.path,
        activity=record.activity,
        width=entry.width or 0,
        height=entry.height or 0,
        box_conf=entry.box_conf or 0.0,
        keypoints=tuple(Keypoint(name=n, x=x, y=y, conf=c) for n, x, y, c in entry.keypoints or ()),
    )
