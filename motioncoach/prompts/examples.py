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
    CueExample("Bend your LEFT knee a little more.", "intermediate", "left_knee", "left_ankle",
               "the shin turned to close the knee"),
    CueExample("Straighten your RIGHT arm at the elbow.", "minor", "right_elbow", "right_wrist",
               "the forearm turned to open the elbow"),
    CueExample("Raise your LEFT arm level with your shoulder.", "intermediate", "left_shoulder", "left_elbow",
               "the upper arm turned up, opening the shoulder"),
    CueExample("Squeeze your glutes and open your RIGHT hip.", "intermediate", "right_hip", "right_knee",
               "the thigh turned to open the hip"),
    CueExample("Lift your chest and stack your shoulders over your hips.", "major", "left_hip", "left_shoulder",
               "the torso line turned upright"),
    CueExample("Lift your hips into one line with your shoulders and heels.", "major", "left_shoulder", "left_hip",
               "the torso line turned up towards that line"),
    CueExample("Keep your head level and draw your chin in a little.", "minor", "nose", "left_eye",
               "the nose-to-eye line turned level"),
    CueExample("Push both knees out over your toes.", "major", "left_knee", "left_ankle",
               "the shin turned out over the foot"),
)  # fmt: skip


def example_lines() -> str:
    return "\n".join(
        f'- "{e.script}" ({e.severity}): both arrows at {e.anchor}, Current towards {e.along}, Target {e.target}.'
        for e in EXAMPLES
    )
