"""Coaching labels: the schema, the geometry they are grounded in, and the labelers."""

from motioncoach.labels.grounding import grounding_problems
from motioncoach.labels.rules import RulesLabeler
from motioncoach.labels.schema import SCHEMA_VERSION, CoachingLabel

__all__ = ["SCHEMA_VERSION", "CoachingLabel", "RulesLabeler", "grounding_problems"]
