"""Target angle ranges in degrees, by activity profile, and which activity takes which profile.

Ranges are coaching conventions for a still photo, deliberately broad: they separate a clearly
bent knee from a straight one, not a good squat from a great one. A profile leaves out the kinds it
has no opinion on (the knees of a seated press), so those are never corrected. Activities are
matched by their whole name or a listed alias, never by a substring: "crunches" is not "run", and
"leg curl" is not a biceps curl.
"""

from __future__ import annotations

import re

Range = tuple[float, float]

STANDING: dict[str, Range] = {
    "knee": (150, 180),
    "hip": (140, 180),
    "elbow": (60, 180),
    "shoulder": (0, 180),
    "trunk_lean": (0, 20),
    "shoulder_tilt": (0, 6),
    "head_tilt": (0, 10),
}
# Kinds whose ideal is the low edge of the range (upright, level) rather than its middle.
IDEAL_AT_LOW = frozenset({"trunk_lean", "shoulder_tilt", "head_tilt"})
_LEVEL = {"shoulder_tilt": (0, 6), "head_tilt": (0, 10)}

PROFILES: dict[str, dict[str, Range]] = {
    # Anything else: upright, with the level lines and the upper body only (sports in motion vary too much).
    "generic": {"elbow": (30, 180), "shoulder": (0, 180), **_LEVEL},
    "standing": STANDING,
    "athletic": {"knee": (100, 180), "hip": (90, 180), "elbow": (30, 180), "shoulder": (0, 180), **_LEVEL},
    "squat": {"knee": (60, 125), "hip": (50, 125), "trunk_lean": (0, 50), **_LEVEL},
    "lunge": {"knee": (75, 180), "hip": (80, 180), "trunk_lean": (0, 20), **_LEVEL},
    "plank": {"knee": (160, 180), "hip": (160, 180), "elbow": (60, 180)},
    "hinge": {"knee": (120, 178), "hip": (50, 180), "trunk_lean": (0, 80)},
    "downdog": {"knee": (150, 180), "hip": (45, 110), "elbow": (150, 180)},
    "tree": {"hip": (90, 180), "trunk_lean": (0, 10), "shoulder": (0, 180), **_LEVEL},
    "seated": {"elbow": (30, 180), "shoulder": (0, 180), **_LEVEL},
    "curl": {"elbow": (25, 180), "shoulder": (0, 35), "trunk_lean": (0, 12), **_LEVEL},
    "overhead": {"elbow": (60, 180), "shoulder": (60, 180), "trunk_lean": (0, 12), **_LEVEL},
    "running": {"knee": (60, 180), "hip": (90, 180), "elbow": (50, 130), "trunk_lean": (0, 25)},
    "lying": {"elbow": (30, 180)},
}

# The activity names of the three Kaggle datasets (yoga poses, workout exercises, sports), and aliases.
ACTIVITIES: dict[str, str] = {
    # yoga
    "downdog": "downdog", "downward dog": "downdog", "adho mukha svanasana": "downdog",
    "goddess": "squat", "goddess pose": "squat", "chair pose": "squat", "utkatasana": "squat",
    "plank": "plank", "plank pose": "plank", "phalakasana": "plank",
    "tree": "tree", "tree pose": "tree", "vrksasana": "tree",
    "warrior2": "lunge", "warrior 2": "lunge", "warrior ii": "lunge", "warrior": "lunge",
    "virabhadrasana": "lunge",
    # workout
    "squat": "squat", "squats": "squat", "front squat": "squat", "goblet squat": "squat",
    "lunge": "lunge", "lunges": "lunge",
    "deadlift": "hinge", "romanian deadlift": "hinge", "good morning": "hinge",
    "push up": "plank", "push-up": "plank", "pushup": "plank", "push ups": "plank",
    "barbell biceps curl": "curl", "biceps curl": "curl", "bicep curl": "curl", "hammer curl": "curl",
    "shoulder press": "overhead", "overhead press": "overhead", "military press": "overhead",
    "lateral raise": "standing", "tricep pushdown": "standing", "t bar row": "hinge",
    "bench press": "lying", "incline bench press": "lying", "decline bench press": "lying",
    "chest fly machine": "seated", "lat pulldown": "seated", "leg extension": "seated",
    "russian twist": "seated", "tricep dips": "seated", "pull up": "overhead", "pull-up": "overhead",
    "hip thrust": "lying", "leg raises": "lying", "crunches": "lying", "sit up": "lying",
    # sports and poses elsewhere
    "standing": "standing", "walking": "standing", "seated": "seated",
    "running": "running", "sprint": "running", "marathon": "running", "hurdles": "running",
    "track": "running", "basketball": "athletic", "tennis": "athletic", "volleyball": "athletic",
    "baseball": "athletic", "football": "athletic", "rugby": "athletic", "boxing": "athletic",
    "fencing": "athletic", "golf": "athletic", "badminton": "athletic", "table tennis": "athletic",
    "cricket": "athletic", "hockey": "athletic", "lacrosse": "athletic", "judo": "athletic",
    "wrestling": "athletic", "archery": "standing", "weightlifting": "squat", "shot put": "athletic",
}  # fmt: skip


def normalize_activity(activity: str) -> str:
    """Lowercase words: 'Warrior_2' -> 'warrior 2', 'push-up' stays 'push-up'."""
    return re.sub(r"\s+", " ", activity.lower().replace("_", " ")).strip()


def profile_for(activity: str) -> str:
    """The profile of an activity by its whole name or alias; 'generic' when it is not listed."""
    return ACTIVITIES.get(normalize_activity(activity), "generic")


def targets_for(activity: str) -> dict[str, Range]:
    """The target ranges the activity's profile has an opinion on."""
    return dict(PROFILES[profile_for(activity)])


# What a coach looks for, by profile: the teacher's per-activity cues.
CUES: dict[str, str] = {
    "squat": "feet about shoulder width, knees tracking over the toes (not caving in), hips down to about knee "
    "height, chest up, back flat, heels down.",
    "lunge": "front knee over the ankle, back leg long, hips square, torso upright, arms level with the shoulders "
    "in warrior poses.",
    "plank": "one straight line from shoulders through hips to heels (hips neither sagging nor piked), shoulders "
    "over the wrists or elbows, core braced, neck long.",
    "hinge": "hips pushed back, back flat from hips to head, a soft bend in the knees, the weight close to the "
    "legs, shoulders over or just in front of the hands.",
    "downdog": "hips high, back long, arms straight and in line with the back, heels reaching down, head between "
    "the arms.",
    "tree": "standing leg straight but not locked, hips level, the lifted foot on the inner thigh or calf (never "
    "the knee), torso tall, arms balanced.",
    "curl": "elbows pinned at the sides, upper arms still, torso upright without swinging, wrists straight.",
    "overhead": "the weight over the middle of the foot, ribs down without arching the lower back, elbows under "
    "the wrists, head through at the top.",
    "running": "tall posture with a slight forward lean from the ankles, relaxed shoulders, arms swinging front "
    "to back at about a right angle, the foot landing under the body.",
    "athletic": "a balanced ready stance: knees soft, hips back a little, weight on the balls of the feet, eyes "
    "on the play.",
    "seated": "back upright or against the pad, shoulders down and back, a controlled range, joints in line with "
    "the machine.",
    "lying": "back and hips in contact where the exercise needs it, shoulder blades set, a controlled range, "
    "wrists straight.",
    "standing": "tall posture, level shoulders and hips, weight balanced over both feet.",
    "generic": "posture, balance and alignment typical of good technique in this activity.",
}


def coaching_cues(activity: str) -> str:
    return CUES[profile_for(activity)]
