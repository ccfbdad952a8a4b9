"""A client process that starts training on the modal profile (rehearsed) and is then killed.

python -m tests.training_client DATA_DIR MAX_STEPS
"""

from __future__ import annotations

import sys
from pathlib import Path

from motioncoach.config import local_train_config
from motioncoach.dataset import load_split
from remote import client as modal_client
from remote import steps as modal_steps

if __name__ == "__main__":
    data_dir, steps = Path(sys.argv[1]), int(sys.argv[2])
    config = local_train_config("/data/models/tiny-qwen3-vl").model_copy(
        update={"max_steps": steps, "save_steps": 2, "eval_steps": 2}
    )
    modal_steps.train(modal_client.connect(data_dir), load_split(data_dir), config, data_dir)
