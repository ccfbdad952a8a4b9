"""Errors the pipeline raises on purpose. Each says who sees it and what they should do."""

from __future__ import annotations


class MotionCoachError(Exception):
    """Base class: shown to the user as is, without a traceback, by the CLI."""


class ConfigurationError(MotionCoachError):
    """A setting, flag or environment variable is missing or wrong; the message names it."""


class MissingDatasetError(MotionCoachError):
    """Training was asked for before a dataset exists."""


class SourceError(MotionCoachError):
    """A source could not list or fetch its images (a missing folder, a failed download)."""


class LabelError(MotionCoachError):
    """One image could not be labeled; recorded as a failed label, never fatal on its own."""


class DataLossError(MotionCoachError):
    """A step was about to replace a labels file, dataset or split holding rows with an empty one.

    Seen by the CLI user; nothing was written, and the message names the file and what to check.
    """


class TrainingError(MotionCoachError):
    """The training process failed; the message holds the tail of its output."""
