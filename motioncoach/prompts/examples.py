"""The cues the coaching instructions show as examples, with where each is drawn.

The prompt prints them (`example_lines()`), and the tests draw each on real poses and hold it against
the checks, so an example the teacher copies is never rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

from motioncoach.labels.schema import Severity


@dataclass(frozen=True)
class CueExample:
    """One example correction: its words, its severity, and its arrows' start and first segment."""

    script: str
    severity: Severity
    anchor: str  # the keypoint both arrows start at
    along: str  # the keypoint Current runs towards
    target: str  # how Target turns from Current, in words


EXAMPLES: tuple[CueExample, ...] = (
    CueExample("Bend your LEFT knee a little more.", "intermediate", "left_knee", "left_ankle", "closing the knee"),
    CueExample("Raise your LEFT arm level with your shoulder.", "intermediate", "left_shoulder", "left_elbow",
               "turned up"),
    CueExample("Lift your chest and stack your shoulders over your hips.", "major", "left_hip", "left_shoulder",
               "turned upright"),
    CueExample("Lift your hips into one line with your shoulders and heels.", "major", "left_shoulder", "left_hip",
               "turned up to that line"),
    CueExample("Keep your head level and draw your chin in a little.", "minor", "nose", "left_eye", "turned level"),
)  # fmt: skip


def example_lines() -> str:
    return "\n".join(
        f'- "{e.script}" ({e.severity}): at {e.anchor}, Current to {e.along}, Target {e.target}.' for e in EXAMPLES
    )
