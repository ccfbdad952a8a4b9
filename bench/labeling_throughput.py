"""Labeling throughput against a fake Gemini with a fixed latency, as a ratio to the ideal.

    uv run python bench/labeling_throughput.py [--latency 0.25] [--images 128]

The ideal is images x latency / concurrency (or images / rpm minutes when --rpm is set); the
ratio ideal / measured is 1.0 for a perfect client. Goal: at least 0.8. The real google-genai
SDK and our whole labeling path (image encoding, validation, the SQLite store) are measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from motioncoach.config import LabelConfig  # noqa: E402
from motioncoach.teachers.labeling import label_with_teachers  # noqa: E402
from tests.fakes import GeminiFake  # noqa: E402
from tests.test_labeling import make_samples  # noqa: E402

KEY = "bench-key"


def measure(fake: GeminiFake, samples, config: LabelConfig) -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.perf_counter()
        report = label_with_teachers(samples, config, Path(data_dir))
        elapsed = time.perf_counter() - started
    assert len(report.labeled) == len(samples), report.usage
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--latency", type=float, default=2.0, help="Seconds the fake takes per request (Gemini Flash: 2-5 s)."
    )
    parser.add_argument("--images", type=int, default=1024, help="Most images per level: 16 per unit of concurrency.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as photos, GeminiFake(api_key=KEY, latency=args.latency) as fake:
        os.environ["GOOGLE_GEMINI_BASE_URL"] = fake.base_url
        os.environ["GEMINI_API_KEY"] = KEY
        pool = make_samples(Path(photos), args.images)
        measure(fake, pool[:1], LabelConfig(labeler="gemini"))  # imports and first connection, not timed
        print(f"fake latency {args.latency:.2f} s; ratio = ideal / measured (goal >= 0.8)")
        for concurrency in (1, 8, 16, 64):
            samples = pool[:8] if concurrency == 1 else pool[: 16 * concurrency]
            elapsed = measure(fake, samples, LabelConfig(labeler="gemini", concurrency=concurrency))
            ideal = len(samples) * args.latency / concurrency
            print(
                f"concurrency {concurrency:>3}: {len(samples):>4} images in {elapsed:6.2f} s, "
                f"ideal {ideal:6.2f} s, ratio {ideal / elapsed:.2f}"
            )
        rpm = 600
        samples = pool[:60]
        elapsed = measure(fake, samples, LabelConfig(labeler="gemini", concurrency=16, rpm=rpm))
        ideal = (len(samples) - 1) * 60 / rpm + args.latency
        print(
            f"rpm {rpm}, concurrency 16: {len(samples)} images in {elapsed:.2f} s, ideal {ideal:.2f} s, "
            f"ratio {ideal / elapsed:.2f}"
        )


if __name__ == "__main__":
    main()
