"""Where task results live and what they are keyed on.

Results are kept inside the data dir they describe, so deleting a data dir also forgets its
cache, and a retried flow run that reads the same data dir finds every finished task's result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from prefect import Flow, Task
from prefect.cache_policies import INPUTS, CacheKeyFnPolicy, CachePolicy
from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects

from motioncoach.config import LabelConfig
from motioncoach.labels.schema import SCHEMA_VERSION
from motioncoach.teachers.keys import LABELER_TEACHERS
from motioncoach.teachers.request import asked_version
from motioncoach.teachers.store import today
from tasks.code_versions import step_code

T = TypeVar("T", Task, Flow)

RESULTS_DIR = ".prefect-results"


def results_dir(data_dir: Path) -> Path:
    return Path(data_dir) / RESULTS_DIR


def persist_in(data_dir: Path, task: T, *, refresh: bool = False) -> T:
    """The task (or sub-flow) with its results and cache records kept in data_dir; refresh: run it even
    if a cached result exists (its files are gone), and cache the new one."""
    options: dict[str, Any] = {"result_storage": results_dir(data_dir), "persist_result": True}
    if refresh:  # left unset otherwise, so a refresh chosen earlier (tasks.labels.labeling_task) holds
        options["refresh_cache"] = True
    return task.with_options(**options)


def _label_contract(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """The prompt templates, the label schema, and the day when a daily budget applies.

    Whether the label store already holds every label is decided at the call site
    (tasks.labels.labeling_task): a run left unfinished (a spent budget, failures to retry) is
    refreshed, and an unchanged rerun of a finished one is Cached. A Batch API run is never cached.
    """
    config: LabelConfig = parameters["config"]
    key = {"prompt": asked_version(), "schema": SCHEMA_VERSION}
    if LABELER_TEACHERS[config.labeler] and config.daily_budget:
        key["day"] = today()  # a new day brings a new budget
    return hash_objects(key)


def keyed(step: str, on_modal: bool = False) -> CachePolicy:
    """A step's cache policy: its inputs (content hashes and configs, never run ids) and the version of
    the domain code it runs (tasks.code_versions), not the task function's own source."""
    return INPUTS + step_code(step, on_modal)


LABELS = keyed("labels") + CacheKeyFnPolicy(cache_key_fn=_label_contract)
