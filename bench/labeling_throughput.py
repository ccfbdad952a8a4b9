"""Labeling throughput against a fake Gemini with a fixed latency, as a ratio to the ideal.

    uv run python bench/labeling_throughput.py [--latency 2.0] [--shards 4] [--skip-2300]

At concurrency 16, 64 and 256 in all, labeling runs two ways: local (one process with all the
requests in flight) and sharded (--shards processes, each with its share of the concurrency and a
label store of its own, merged at the end: what the modal profile does over containers). The ideal
is images x latency / concurrency; the ratio ideal / measured is 1.0 for a perfect client. Goal:
at least 0.9 at 64. Then 2,300 labels at 1,000 requests per minute over 8 shards, against the goal
of 5 minutes. The real google-genai SDK and our whole labeling path (image encoding, validation,
the SQLite stores, the merge) are measured; the shards' processes are started before the clock.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from motioncoach.config import LabelConfig  # noqa: E402
from motioncoach.teachers.labeling import label_with_teachers  # noqa: E402
from motioncoach.teachers.shards import (  # noqa: E402
    merge_label_reports,
    merge_label_stores,
    seed_shard_store,
    shard_config,
    shard_samples,
)
from motioncoach.teachers.store import STORE_FILE  # noqa: E402
from tests.fakes import GeminiFake  # noqa: E402
from tests.test_labeling import make_samples  # noqa: E402

KEY = "bench-key"


def label_shard(samples, config: LabelConfig, store_dir: str):
    """One container's work: its images, its share of the limits, its own store."""
    return label_with_teachers(samples, config, Path(store_dir))


def serve_fake(latency: float, urls, stop) -> None:
    """The fake Gemini in a process of its own, as the real one is: its CPU is not the client's."""
    with GeminiFake(api_key=KEY, latency=latency) as fake:
        urls.put(fake.base_url)
        stop.wait()


def warm(_: int = 0) -> int:
    """Import what a shard runs, once per process, as a warm container has it."""
    import motioncoach.teachers.gemini  # noqa: F401
    import motioncoach.teachers.labeling  # noqa: F401

    time.sleep(0.2)  # long enough that every process of the pool takes one
    return os.getpid()


def run_local(samples, config: LabelConfig) -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.perf_counter()
        report = label_with_teachers(samples, config, Path(data_dir))
        elapsed = time.perf_counter() - started
    assert len(report.labeled) == len(samples), report.usage
    return elapsed


def run_sharded(pool: ProcessPoolExecutor, samples, config: LabelConfig, shards: int) -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        home = Path(data_dir) / STORE_FILE
        parts = shard_samples(samples, shards)
        started = time.perf_counter()
        dirs = [Path(data_dir) / f"shard-{i}" for i in range(len(parts))]
        for own in dirs:
            seed_shard_store(home, own / STORE_FILE)
        limits = shard_config(config, len(parts), 0)
        futures = [pool.submit(label_shard, part, limits, str(own)) for part, own in zip(parts, dirs, strict=True)]
        reports = [f.result() for f in futures]
        merge_label_stores(home, [own / STORE_FILE for own in dirs])
        report = merge_label_reports(samples, reports)
        elapsed = time.perf_counter() - started
    assert len(report.labeled) == len(samples), report.usage
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=2.0, help="Seconds the fake takes per request (Flash: 2-5 s).")
    parser.add_argument("--shards", type=int, default=4, help="Processes of the sharded runs (containers on Modal).")
    parser.add_argument("--per-slot", type=int, default=8, help="Images per unit of concurrency at each level.")
    parser.add_argument("--skip-2300", action="store_true", help="Leave out the 2,300 labels at 1,000 rpm (~2.5 min).")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    urls, stop = context.Queue(), context.Event()
    server = context.Process(target=serve_fake, args=(args.latency, urls, stop), daemon=True)
    server.start()
    with tempfile.TemporaryDirectory() as photos:
        os.environ["GOOGLE_GEMINI_BASE_URL"] = urls.get(timeout=60)
        os.environ["GEMINI_API_KEY"] = KEY
        pool_size = max(args.shards, 8)
        pool = ProcessPoolExecutor(pool_size, mp_context=context)
        assert len(set(pool.map(warm, range(pool_size)))) == pool_size
        samples = make_samples(Path(photos), max(2300, args.per_slot * 256))
        run_local(samples[:2], LabelConfig(labeler="gemini"))  # imports and the first connection, not timed
        print(f"fake latency {args.latency:.2f} s; ratio = ideal / measured (goal >= 0.9 at 64)")
        for concurrency in (16, 64, 256):
            batch = samples[: args.per_slot * concurrency]
            ideal = len(batch) * args.latency / concurrency
            config = LabelConfig(labeler="gemini", concurrency=concurrency)
            local = run_local(batch, config)
            sharded = run_sharded(
                pool, batch, config.model_copy(update={"concurrency": concurrency // args.shards}), args.shards
            )
            print(
                f"concurrency {concurrency:>3}: {len(batch):>4} images, ideal {ideal:6.2f} s | "
                f"local {local:6.2f} s ratio {ideal / local:.2f} | "
                f"{args.shards} shards x {concurrency // args.shards} {sharded:6.2f} s ratio {ideal / sharded:.2f}"
            )
        if not args.skip_2300:
            rpm, shards = 1000, 8
            config = LabelConfig(labeler="gemini", concurrency=16, rpm=rpm)
            elapsed = run_sharded(pool, samples[:2300], config, shards)
            ideal = math.ceil(2300 / shards) * 60 / (rpm // shards) + args.latency
            print(
                f"2300 labels at {rpm} rpm over {shards} shards x 16: {elapsed / 60:.2f} min "
                f"(ideal {ideal / 60:.2f} min, ratio {ideal / elapsed:.2f}; goal < 5 min)"
            )
        pool.shutdown()
    stop.set()
    server.join(10)


if __name__ == "__main__":
    main()
