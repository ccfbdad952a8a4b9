"""What a coaching cue names: a joint on one side, or a midline or paired region, and its keypoints.

"Bend your LEFT knee" names left_knee; "keep your back flat" names the back, whose keypoints are the
hips and shoulders; "push both knees out" names both knees. A cue's arrows must start on a keypoint
of something it names, so the words and the drawing agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A body part on one side -> the keypoints that part is drawn from.
SIDED_PARTS: dict[str, tuple[str, ...]] = {
    "shoulder": ("shoulder",),
    "elbow": ("elbow",),
    "wrist": ("wrist",),
    "hand": ("wrist",),
    "arm": ("shoulder", "elbow", "wrist"),
    "upper arm": ("shoulder", "elbow"),
    "forearm": ("elbow", "wrist"),
    "hip": ("hip",),
    "knee": ("knee",),
    "ankle": ("ankle",),
    "foot": ("ankle",),
    "heel": ("ankle",),
    "leg": ("hip", "knee", "ankle"),
    "thigh": ("hip", "knee"),
    "shin": ("knee", "ankle"),
    "ear": ("ear",),
    "eye": ("eye",),
}
_BOTH = ("left", "right")
_TORSO = tuple(f"{s}_{p}" for p in ("shoulder", "hip") for s in _BOTH)
_HEAD = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
# A midline or paired region -> its keypoints.
REGIONS: dict[str, tuple[str, ...]] = {
    "back": _TORSO, "spine": _TORSO, "chest": _TORSO, "core": _TORSO, "torso": _TORSO, "trunk": _TORSO,
    "body": _TORSO, "hips": tuple(f"{s}_hip" for s in _BOTH), "pelvis": tuple(f"{s}_hip" for s in _BOTH),
    "shoulders": tuple(f"{s}_shoulder" for s in _BOTH), "head": _HEAD, "neck": _HEAD, "chin": _HEAD,
    "gaze": _HEAD, "knees": tuple(f"{s}_knee" for s in _BOTH), "elbows": tuple(f"{s}_elbow" for s in _BOTH),
    "arms": tuple(f"{s}_{p}" for p in ("shoulder", "elbow", "wrist") for s in _BOTH),
    "hands": tuple(f"{s}_wrist" for s in _BOTH), "wrists": tuple(f"{s}_wrist" for s in _BOTH),
    "legs": tuple(f"{s}_{p}" for p in ("hip", "knee", "ankle") for s in _BOTH),
    "feet": tuple(f"{s}_ankle" for s in _BOTH), "heels": tuple(f"{s}_ankle" for s in _BOTH),
    "ankles": tuple(f"{s}_ankle" for s in _BOTH),
}  # fmt: skip

_PARTS = "|".join(sorted((re.escape(p) for p in SIDED_PARTS), key=len, reverse=True))
_SIDED = re.compile(rf"\b(left|right)\s+({_PARTS})\b", re.IGNORECASE)
_REGION = re.compile(rf"\b({'|'.join(sorted(REGIONS, key=len, reverse=True))})\b", re.IGNORECASE)
_SIDE_WORD = re.compile(r"\b(left|right)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Named:
    """One thing a cue names: 'left knee' or 'back', with the keypoints it may be drawn from."""

    words: str
    keypoints: tuple[str, ...]
    side: str | None  # 'left' or 'right' for a sided part, None for a midline or paired region


def named_parts(script: str) -> list[Named]:
    """Everything the script names, in order: sided parts first where they overlap a region word."""
    found: list[tuple[int, Named]] = []
    taken: list[range] = []
    for match in _SIDED.finditer(script):
        side, part = match.group(1).lower(), match.group(2).lower()
        found.append((match.start(), Named(f"{side} {part}", tuple(f"{side}_{p}" for p in SIDED_PARTS[part]), side)))
        taken.append(range(match.start(), match.end()))
    for match in _REGION.finditer(script):
        if any(match.start() in span for span in taken):
            continue
        region = match.group(1).lower()
        found.append((match.start(), Named(region, REGIONS[region], None)))
    return [named for _, named in sorted(found, key=lambda item: item[0])]


def first_side(script: str) -> str:
    """The side the script names first, 'left' or 'right', or '' for a midline cue."""
    for named in named_parts(script):
        if named.side:
            return named.side
    match = _SIDE_WORD.search(script)
    return match.group(1).lower() if match else ""
