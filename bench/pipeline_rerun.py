"""Time `motioncoach run` on the offline samples, then its unchanged rerun, and print the ratio.

    uv run python bench/pipeline_rerun.py [--keep DIR]

Both runs go through the real CLI in a fresh working directory, Prefect start-up included.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(workdir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cli.main", "run"],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Run in this directory and keep its data.")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="motioncoach-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        first = timed_run(workdir)
        rerun = timed_run(workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"first run: {first:.1f} s (goal: under 180 s on 2 cores)")
    print(f"rerun:     {rerun:.1f} s")
    print(f"rerun/first: {rerun / first:.2f}")


if __name__ == "__main__":
    main()
