"""Target angle ranges in degrees, per activity where known and generic otherwise.

Ranges are coaching conventions for a still photo, deliberately broad: they separate a clearly
bent knee from a straight one, not a good squat from a great one.
"""

from __future__ import annotations

Range = tuple[float, float]

GENERIC: dict[str, Range] = {
    "knee": (150, 180),
    "hip": (140, 180),
    "elbow": (60, 180),
    "shoulder": (0, 150),
    "trunk_lean": (0, 20),
    "shoulder_tilt": (0, 5),
    "head_tilt": (0, 8),
}
# Kinds whose ideal is the low edge of the range (upright, level) rather than its middle.
IDEAL_AT_LOW = frozenset({"trunk_lean", "shoulder_tilt", "head_tilt"})

# Matched against the activity name, lowercased, first keyword found wins. Only the kinds that
# differ from GENERIC are listed.
BY_ACTIVITY: tuple[tuple[tuple[str, ...], dict[str, Range]], ...] = (
    (("squat", "goddess", "chair"), {"knee": (70, 120), "hip": (60, 120), "trunk_lean": (0, 45)}),
    (("lunge", "warrior"), {"knee": (80, 180), "hip": (90, 180), "trunk_lean": (0, 15)}),
    (("plank", "push up", "push-up", "pushup"), {"knee": (160, 180), "hip": (160, 180), "trunk_lean": (0, 180)}),
    (("deadlift", "romanian"), {"knee": (120, 175), "hip": (60, 180), "trunk_lean": (0, 80)}),
    (("downdog", "downward"), {"knee": (150, 180), "hip": (45, 100), "elbow": (150, 180), "trunk_lean": (0, 180)}),
    (("tree",), {"knee": (30, 180), "hip": (90, 180), "trunk_lean": (0, 10)}),
    (("bench press", "pull up", "pull-up", "lat pulldown", "chest fly"), {"elbow": (60, 180), "trunk_lean": (0, 180)}),
    (("bicep", "curl", "hammer"), {"elbow": (30, 180), "shoulder": (0, 30), "trunk_lean": (0, 10)}),
    (("shoulder press", "overhead"), {"elbow": (70, 180), "shoulder": (60, 180), "trunk_lean": (0, 10)}),
    (
        ("run", "sprint", "marathon", "track"),
        {"knee": (60, 180), "hip": (90, 180), "elbow": (60, 120), "trunk_lean": (0, 20)},
    ),
    (("swim", "diving", "gymnast", "cobra", "dancer"), {"knee": (0, 180), "hip": (0, 180), "trunk_lean": (0, 180)}),
)


def targets_for(activity: str) -> dict[str, Range]:
    """The target ranges for an activity: its specific ones over the generic ones."""
    name = activity.lower().replace("_", " ")
    for keywords, ranges in BY_ACTIVITY:
        if any(k in name for k in keywords):
            return {**GENERIC, **ranges}
    return dict(GENERIC)
