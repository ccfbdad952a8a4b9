"""What version of the code a cached result was computed by: the domain modules a step runs.

A step's cache key holds a hash of the `motioncoach` modules it uses (and, on the modal profile, of
the Modal app that runs them), not of the Prefect task's own source: a log line or a retry setting
in a task body never re-runs training, while a change to the row format, the split or the label
schema does.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from prefect.cache_policies import CacheKeyFnPolicy
from prefect.context import TaskRunContext

from motioncoach.hashing import tree_sha256

ROOT = Path(__file__).resolve().parent.parent
MODAL_APP = ("remote/app.py", "remote/container.py", "remote/contract.py", "remote/images.py", "remote/requirements")

# Step -> the parts of the project whose code decides its result.
STEP_CODE: dict[str, tuple[str, ...]] = {
    "pose": ("motioncoach/pose", "motioncoach/records.py", "motioncoach/config.py"),
    "labels": ("motioncoach/labels", "motioncoach/teachers", "motioncoach/prompts", "motioncoach/records.py",
               "motioncoach/dataset/prompt.py", "motioncoach/config.py"),
    "dataset": ("motioncoach/dataset", "motioncoach/labels", "motioncoach/prompts"),
    "training": ("motioncoach/training", "motioncoach/config.py"),
    "evaluation": ("motioncoach/evaluation", "motioncoach/labels", "motioncoach/dataset/prompt.py",
                   "motioncoach/serving"),
    "benchmark": ("motioncoach/benchmarks", "motioncoach/serving", "motioncoach/labels", "motioncoach/teachers",
                  "motioncoach/prompts", "motioncoach/dataset/prompt.py"),
}  # fmt: skip


@cache
def code_version(parts: tuple[str, ...], root: Path = ROOT) -> str:
    """A short hash of the files under these paths (relative to root), by path and content."""
    return tree_sha256(root, parts)


def step_code(step: str, on_modal: bool = False) -> CacheKeyFnPolicy:
    """The cache-key part for a step: its domain code, and the Modal app's when it runs there (a task's
    `profile` parameter says modal, or on_modal for a task that runs only there)."""

    def key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
        version = code_version(STEP_CODE[step])
        if on_modal or str(parameters.get("profile", "")).endswith("modal"):
            version += "+" + code_version(MODAL_APP)
        return f"{step}:{version}"

    return CacheKeyFnPolicy(cache_key_fn=key)
