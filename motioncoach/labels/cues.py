"""What a coaching cue names, from one table of body parts and regions.

"Bend your LEFT knee" names left_knee; "keep your back flat" names the back, whose arrows may start
at a hip or a shoulder; "push both knees out" names both knees; "squeeze your glutes" names the
hips. The same table writes the teacher prompt's vocabulary (`vocabulary()`), parses scripts
(`named_parts()`) and tells the checks where a cue's arrows may start, so what the prompt allows
the checks accept. Sides are the person's own LEFT and RIGHT: "front knee" or "back leg" name no
side and are refused with a reason (`side_problem()`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIDES = ("left", "right")


@dataclass(frozen=True)
class SidedPart:
    """A part on one side of the body, named with LEFT or RIGHT; its plural names both sides."""

    name: str
    keypoints: tuple[str, ...]  # without the side: ("knee",) stands for left_knee or right_knee
    synonyms: tuple[str, ...] = ()
    moves_a_joint: bool = True  # its arrows turn a limb about a joint (not an ear or an eye)


@dataclass(frozen=True)
class Region:
    """A midline region, named without a side, and the keypoints its arrows may start at."""

    name: str
    keypoints: tuple[str, ...]
    synonyms: tuple[str, ...] = ()
    why: str = ""  # shown in the prompt where the anchors are not obvious


def _both(*parts: str) -> tuple[str, ...]:
    return tuple(f"{side}_{part}" for part in parts for side in _SIDES)


HEAD_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
SIDED_PARTS: tuple[SidedPart, ...] = (
    SidedPart("shoulder", ("shoulder",), ("shoulder blade",)),
    SidedPart("elbow", ("elbow",)),
    SidedPart("wrist", ("wrist",), ("hand",)),
    SidedPart("arm", ("shoulder", "elbow", "wrist")),
    SidedPart("upper arm", ("shoulder", "elbow")),
    SidedPart("forearm", ("elbow", "wrist")),
    SidedPart("hip", ("hip",), ("glute",)),
    SidedPart("knee", ("knee",)),
    SidedPart("ankle", ("ankle",), ("foot", "heel", "toe")),
    SidedPart("leg", ("hip", "knee", "ankle")),
    SidedPart("thigh", ("hip", "knee"), ("quad", "hamstring")),
    SidedPart("shin", ("knee", "ankle"), ("calf", "lower leg")),
    SidedPart("ear", ("ear",), moves_a_joint=False),
    SidedPart("eye", ("eye",), moves_a_joint=False),
)
REGIONS: tuple[Region, ...] = (
    Region("back", _both("shoulder", "hip"), ("spine", "lower back", "upper back")),
    Region("chest", _both("shoulder", "hip"), ("ribs", "rib cage", "sternum")),
    Region("core", _both("shoulder", "hip"), ("torso", "trunk", "abs", "midsection")),
    Region(
        "hips", _both("hip", "shoulder"), ("pelvis", "glutes", "tailbone"),
        why="a hip, or a shoulder when the arrows show the torso line (a plank's sagging hips)",
    ),
    Region("shoulders", _both("shoulder"), ("shoulder blades",)),
    Region("head", HEAD_KEYPOINTS, ("neck", "chin", "gaze", "face"), why="the nose, an eye or an ear"),
)  # fmt: skip

_IRREGULAR_PLURALS = {"foot": "feet", "calf": "calves", "lower leg": "lower legs"}
# Words that place a limb by the pose instead of the body: a coach's "front knee" is LEFT or RIGHT.
_NOT_A_SIDE = ("front", "back", "rear", "lead", "leading", "trail", "trailing", "forward", "standing", "working")


def plural(word: str) -> str:
    return _IRREGULAR_PLURALS.get(word, f"{word}s")


@dataclass(frozen=True)
class Named:
    """One thing a script names: 'left knee' or 'back', the keypoints its arrows may start at, and where."""

    words: str
    keypoints: tuple[str, ...]
    side: str | None  # 'left' or 'right' for a sided part, None for a region or both sides
    part: str  # the table's name: 'knee', 'back'
    moves_a_joint: bool
    start: int = 0  # position in the script
    end: int = 0


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


_SIDED_WORDS = {w: p for p in SIDED_PARTS for w in (p.name, *p.synonyms)}
# A region's own words win over a plural of a sided part ("hips", "shoulders", "glutes").
_PLURAL_WORDS = {plural(w): p for w, p in _SIDED_WORDS.items()}
_REGION_WORDS = {w: r for r in REGIONS for w in (r.name, *r.synonyms)}
for _word in _REGION_WORDS:
    _PLURAL_WORDS.pop(_word, None)

_SIDED = re.compile(
    rf"\b(left|right)\s+(?:(?:{'|'.join(_NOT_A_SIDE)})\s+)?({_alternation(_SIDED_WORDS)})\b", re.IGNORECASE
)
_PLURAL = re.compile(rf"\b({_alternation(_PLURAL_WORDS)})\b", re.IGNORECASE)
_REGION = re.compile(rf"\b({_alternation(_REGION_WORDS)})\b", re.IGNORECASE)
_ALL_PART_WORDS = _alternation([*_SIDED_WORDS, *_PLURAL_WORDS])
_UNSIDED = re.compile(rf"\b({'|'.join(_NOT_A_SIDE)})\s+({_ALL_PART_WORDS})\b", re.IGNORECASE)
_LONE = re.compile(rf"\b({_alternation(_SIDED_WORDS)})\b", re.IGNORECASE)


def named_parts(script: str) -> list[Named]:
    """Everything the script names, in order. A sided phrase wins over a region word inside it
    ("LEFT shoulder blade"), and "back" before a limb ("back knee") is not the region back."""
    found: list[Named] = []
    taken: list[range] = []

    def free(match: re.Match) -> bool:
        return not any(match.start() in span or match.end() - 1 in span for span in taken)

    for match in _SIDED.finditer(script):
        side, part = match.group(1).lower(), _SIDED_WORDS[match.group(2).lower()]
        keypoints = tuple(f"{side}_{k}" for k in part.keypoints)
        words = f"{side} {match.group(2).lower()}"
        found.append(Named(words, keypoints, side, part.name, part.moves_a_joint, match.start(), match.end()))
        taken.append(range(match.start(), match.end()))
    for match in _UNSIDED.finditer(script):  # "back knee": neither a side nor the back
        taken.append(range(match.start(), match.end()))
    for match in _REGION.finditer(script):
        if free(match):
            region = _REGION_WORDS[match.group(1).lower()]
            found.append(
                Named(match.group(1).lower(), region.keypoints, None, region.name, False, match.start(), match.end())
            )
            taken.append(range(match.start(), match.end()))
    for match in _PLURAL.finditer(script):
        if free(match):
            part = _PLURAL_WORDS[match.group(1).lower()]
            words, keypoints = match.group(1).lower(), _both(*part.keypoints)
            found.append(Named(words, keypoints, None, part.name, part.moves_a_joint, match.start(), match.end()))
    return sorted(found, key=lambda n: n.start)


def side_problem(script: str) -> str | None:
    """Why the script's sides cannot be located ("front knee", a lone "knee"), or None."""
    sided = [range(m.start(), m.end()) for m in _SIDED.finditer(script)]
    for unsided in _UNSIDED.finditer(script):
        if not any(unsided.start() in span for span in sided):
            return (
                f"coaching_script says '{unsided.group(0)}': name the side as LEFT or RIGHT (the person's own), "
                "not front, back, lead or standing"
            )
    if not named_parts(script):
        lone = _LONE.search(script)
        if lone:
            return (
                f"coaching_script names '{lone.group(1)}' without a side: name a side and joint (LEFT "
                f"{lone.group(1)}) or both (both {plural(lone.group(1).lower())})"
            )
        return (
            "coaching_script names no body part the checks can locate: name a side and joint (LEFT knee) or a "
            "midline or paired region (back, hips, both knees)"
        )
    return None


def first_side(script: str) -> str:
    """The side the script names first, 'left' or 'right', or '' for a midline cue ("a right angle" is no side)."""
    return next((named.side for named in named_parts(script) if named.side), "")


def vocabulary() -> str:
    """The prompt's lines on what a cue may name and where its arrows start, written from the table."""
    sided = ", ".join(p.name for p in SIDED_PARTS)
    regions = ", ".join(r.name for r in REGIONS)
    synonyms = "; ".join(f"{', '.join(p.synonyms)} ({p.name})" for p in (*SIDED_PARTS, *REGIONS) if p.synonyms)
    stems = [w for w in _NOT_A_SIDE if not w.endswith("ing") or w == "standing"]
    not_sides = f"{', '.join(stems[:-1])} or {stems[-1]}"
    anchors: dict[str, list[str]] = {}
    for region in REGIONS:
        anchors.setdefault(region.why or f"a {_keypoint_words(region.keypoints)}", []).append(region.name)
    where = "; ".join(f"{', '.join(names)}: {words}" for words, names in anchors.items())
    return (
        f"- a part on one side with LEFT or RIGHT (the person's own): {sided}; both sides with the plural "
        f"(both knees, your feet); or a midline region: {regions}. Also understood: {synonyms}.\n"
        f'- sides are LEFT or RIGHT only, never {not_sides} (not "front knee"); a script naming none of '
        'these ("keep your body aligned") is rejected.\n'
        "- the arrows start at a keypoint of what it names: a joint at itself, a longer part at one of its "
        f"joints, a synonym where its part does; {where}."
    )


def _keypoint_words(keypoints: tuple[str, ...]) -> str:
    """'shoulder, elbow or wrist' for the kinds of keypoint, without sides."""
    kinds = list(dict.fromkeys(k.split("_", 1)[-1] for k in keypoints))
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
