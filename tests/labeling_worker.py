"""Runs label_with_teachers in its own process, so a test can kill it with SIGKILL mid-run.

python -m tests.labeling_worker SAMPLES_JSON DATA_DIR CONCURRENCY
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from motioncoach.config import LabelConfig
from motioncoach.records import PoseSample
from motioncoach.teachers.labeling import label_with_teachers


def main() -> None:
    samples_json, data_dir, concurrency = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    samples = [PoseSample.model_validate(s) for s in json.loads(Path(samples_json).read_text())]
    label_with_teachers(samples, LabelConfig(labeler="gemini", concurrency=concurrency), data_dir)


if __name__ == "__main__":
    main()
