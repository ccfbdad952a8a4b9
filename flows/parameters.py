"""What the flows' parameters share: the bounds the Prefect UI form enforces, and run names.

Each flow describes its parameters in its docstring's Args section (the UI shows those); the
names are the CLI's flags, and the nested forms hold only what no top-level parameter carries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from prefect.runtime import flow_run
from pydantic import Field

from motioncoach.config import Profile, default_labeler, default_source

MaxSamples = Annotated[int, Field(ge=1, le=1_000_000)]
MaxDownloadMb = Annotated[int, Field(ge=0, le=1_000_000)]
DailyBudget = Annotated[int | None, Field(ge=1)]
AuditSize = Annotated[int | None, Field(ge=0, le=10_000)]
BenchmarkTeacher = Literal["gemini", "openrouter", "rules", "none"]
# Labels people judge before training when no --audit is given: none locally, 30 where training costs money.
AUDIT_DEFAULTS = {Profile.local: 0, Profile.modal: 30}


def audit_size(audit: int | None, profile: Profile) -> int:
    """--audit, or the profile's default."""
    return AUDIT_DEFAULTS[Profile(profile)] if audit is None else audit


def run_name() -> str:
    """A flow run's name that says what it does: 'samples-rules', 'kaggle-gemini-modal'."""
    parameters = flow_run.parameters or {}
    profile = Profile.modal if _where(parameters) else Profile.local
    source = str(parameters.get("source") or default_source(profile))
    labeler = parameters.get("labeler") or default_labeler(profile)
    return f"{Path(source).name or source}-{labeler}{_where(parameters)}"


def train_run_name() -> str:
    """'train-data', 'train-data-modal'."""
    parameters = flow_run.parameters or {}
    return f"train-{Path(str(parameters.get('data_dir') or 'data')).name}{_where(parameters)}"


def _where(parameters: dict) -> str:
    return "-modal" if str(parameters.get("profile") or "local").endswith("modal") else ""


def teacher_of(labeler: str) -> str:
    """The teacher a benchmark scores beside the models: the labeler's first teacher, or the rules."""
    from motioncoach.teachers.keys import LABELER_TEACHERS

    return (LABELER_TEACHERS.get(labeler) or ("rules",))[0]
