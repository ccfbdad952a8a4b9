"""When labeling counts as failed as a whole."""

from __future__ import annotations

from motioncoach.errors import MotionCoachError
from motioncoach.labels.outcomes import LabelReport


class LabelingFailed(MotionCoachError):
    """Too many images failed; what succeeded is saved, and a rerun continues from there."""


def check_failure_rate(report: LabelReport, max_failure_rate: float, store_hint: str) -> None:
    """Raise when more than max_failure_rate of the attempted images failed."""
    attempted = len(report.outcomes) - len(report.having("deferred"))
    failed = len(report.failed)
    if attempted and failed / attempted > max_failure_rate:
        reasons = sorted({o.reason or "" for o in report.failed})[:3]
        raise LabelingFailed(
            f"{failed} of {attempted} images could not be labeled ({failed / attempted:.0%} > "
            f"--max-failure-rate {max_failure_rate:.0%}); e.g. {'; '.join(reasons)}. "
            f"The {len(report.labeled)} labels that succeeded are saved in {store_hint}; "
            "rerun (or retry the flow run) to continue with only the missing ones."
        )
