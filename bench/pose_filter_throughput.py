"""Pose filter throughput against a bare Ultralytics predict loop, and the cost of a warm-cache rerun.

Run: uv run python bench/pose_filter_throughput.py [--copies 5] [--rounds 3]
Goals: ours/bare <= 1.15 (decoding, hashing and caching cost little next to YOLO) and
rerun/first < 0.05 (a warm cache does no YOLO work).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
from matplotlib import cbook
from PIL import Image

from motioncoach.config import PoseFilterConfig
from motioncoach.pose import CACHE_FILE_NAME, configure_ultralytics, filter_poses, resolve_weights
from motioncoach.records import ImageRecord


def sample_photos() -> dict[str, Image.Image]:
    """The real photos shipped in installed packages: people, crowds and no one."""
    assets = Path(importlib.util.find_spec("ultralytics").submodule_search_locations[0]) / "assets"
    return {
        "astronaut": Image.fromarray(skimage.data.astronaut()),
        "grace_hopper": Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"),
        "bus": Image.open(assets / "bus.jpg").convert("RGB"),
        "zidane": Image.open(assets / "zidane.jpg").convert("RGB"),
        "coffee": Image.fromarray(skimage.data.coffee()),
        "chelsea": Image.fromarray(skimage.data.chelsea()),
    }


def write_copies(folder: Path, copies: int) -> list[ImageRecord]:
    """Each photo saved `copies` times as a JPEG with one pixel changed, so every file hashes apart."""
    records = []
    for name, photo in sample_photos().items():
        for i in range(copies):
            pixels = np.array(photo)
            pixels[0, 0] = (i * 37) % 256
            path = folder / name / f"{name}-{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path, quality=92)
            records.append(ImageRecord(path=path, activity=name, sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
    return records


def bare_predict(model, paths: list[str], config: PoseFilterConfig) -> int:
    """What Ultralytics alone does over the same files: read, letterbox, infer, NMS."""
    found = 0
    for start in range(0, len(paths), config.batch_size):
        results = model.predict(
            paths[start : start + config.batch_size],
            conf=config.person_conf,
            imgsz=config.imgsz,
            batch=config.batch_size,
            device=config.device,
            rect=False,  # as filter_poses does, so both run the same tensors
            verbose=False,
        )
        found += sum(len(r.boxes) for r in results)
    return found


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=5, help="Distinct copies of each of the 6 photos.")
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds; the median is reported.")
    parser.add_argument("--batch-size", type=int, default=PoseFilterConfig().batch_size, help="Images per pass.")
    args = parser.parse_args()
    config = PoseFilterConfig(batch_size=args.batch_size)
    configure_ultralytics()
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records = write_copies(root / "photos", args.copies)
        paths = [str(r.path) for r in records]
        warmup = write_copies(root / "warmup", 1)[:2]  # other contents: never in the timed caches

        bare = YOLO(str(resolve_weights(config.weights)), task="pose")
        bare_predict(bare, [str(r.path) for r in warmup], config)
        filter_poses(warmup, config, root / "warmup" / CACHE_FILE_NAME)  # loads our model once

        bare_s, ours_s, rerun_s = [], [], []
        for round_ in range(args.rounds):
            seconds, _ = timed(bare_predict, bare, paths, config)
            bare_s.append(seconds)
            cache_path = root / f"round-{round_}" / CACHE_FILE_NAME
            seconds, first = timed(filter_poses, records, config, cache_path)
            ours_s.append(seconds)
            seconds, rerun = timed(filter_poses, records, config, cache_path)
            rerun_s.append(seconds)
            assert first.newly_processed == len(records) and rerun.newly_processed == 0
        shutil.rmtree(root / "photos")

    bare_t, ours_t, rerun_t = (statistics.median(s) for s in (bare_s, ours_s, rerun_s))
    n = len(records)
    print(f"{n} distinct images, batch {config.batch_size}, imgsz {config.imgsz}, {args.rounds} rounds (median)")
    print(f"(a) bare ultralytics predict : {bare_t:7.3f} s  {1000 * bare_t / n:7.1f} ms/image")
    print(f"(b) filter_poses, fresh cache: {ours_t:7.3f} s  {1000 * ours_t / n:7.1f} ms/image")
    print(f"(c) filter_poses, warm cache : {rerun_t:7.3f} s  {1000 * rerun_t / n:7.1f} ms/image")
    print(f"ours/bare   = {ours_t / bare_t:.3f}  (goal <= 1.15)")
    print(f"rerun/first = {rerun_t / ours_t:.4f}  (goal < 0.05)")


if __name__ == "__main__":
    main()
