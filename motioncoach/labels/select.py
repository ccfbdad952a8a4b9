"""From the --labeler value to a labeler."""

from __future__ import annotations

from motioncoach.config import LabelConfig
from motioncoach.errors import ConfigurationError
from motioncoach.labels.outcomes import Labeler
from motioncoach.labels.rules import RulesLabeler

LABELERS = ("rules",)


def labeler_for(config: LabelConfig) -> Labeler:
    if config.labeler == "rules":
        return RulesLabeler()
    raise ConfigurationError(f"--labeler {config.labeler!r} is not one of: {', '.join(LABELERS)}.")
