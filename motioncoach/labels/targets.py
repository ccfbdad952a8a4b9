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
    # Mid-action sports: a swing, throw or strike tilts the shoulders and bends the knees on purpose.
    "ball": {"knee": (90, 180), "elbow": (20, 180)},
    "combat": {"elbow": (20, 180)},
    "squat": {"knee": (60, 125), "hip": (50, 125), "trunk_lean": (0, 50), **_LEVEL},
    "chair": {"knee": (70, 140), "hip": (60, 140), "trunk_lean": (0, 50), "shoulder": (130, 180), **_LEVEL},
    "goddess": {"knee": (80, 135), "trunk_lean": (0, 15), **_LEVEL},
    "lunge": {"knee": (75, 180), "hip": (80, 180), "trunk_lean": (0, 20), **_LEVEL},
    # Warrior II: one knee bent over its ankle, the other leg straight, arms level with the shoulders.
    "warrior": {"knee": (80, 180), "elbow": (150, 180), "shoulder": (70, 110), "trunk_lean": (0, 15), **_LEVEL},
    "plank": {"knee": (160, 180), "hip": (160, 180), "elbow": (60, 180)},
    "hinge": {"knee": (120, 178), "hip": (50, 180), "trunk_lean": (0, 80)},
    "downdog": {"knee": (150, 180), "hip": (45, 110), "elbow": (150, 180)},
    "tree": {"hip": (90, 180), "trunk_lean": (0, 10), "shoulder": (0, 180), **_LEVEL},
    "seated": {"elbow": (30, 180), "shoulder": (0, 180), **_LEVEL},
    # The Russian twist leans back from the hips, knees bent.
    "twist": {"trunk_lean": (25, 65), "knee": (45, 130)},
    "curl": {"elbow": (25, 180), "shoulder": (0, 35), "trunk_lean": (0, 12), **_LEVEL},
    "overhead": {"elbow": (60, 180), "shoulder": (60, 180), "trunk_lean": (0, 12), **_LEVEL},
    # Hanging from a bar: no standing cues; the body stays still under it.
    "hang": {"trunk_lean": (0, 30), **_LEVEL},
    "running": {"knee": (60, 180), "hip": (90, 180), "elbow": (50, 130), "trunk_lean": (0, 25)},
    "bench": {"elbow": (30, 180)},
    # On the floor, face up: the rules judge no angle there; the teacher's cues say what matters.
    "floor": {},
    "bridge": {},
    "dip": {"elbow": (60, 180), **_LEVEL},
    "lateral raise": {"elbow": (140, 180), "shoulder": (0, 100), "trunk_lean": (0, 12), **_LEVEL},
    "pushdown": {"elbow": (25, 180), "shoulder": (0, 35), "trunk_lean": (0, 25), **_LEVEL},
    "fencing": {"knee": (80, 180), "elbow": (20, 180)},
    "grappling": {},
}

# The activity names of the three Kaggle datasets (yoga poses, workout exercises, sports), and aliases.
ACTIVITIES: dict[str, str] = {
    # yoga
    "downdog": "downdog", "downward dog": "downdog", "adho mukha svanasana": "downdog",
    "goddess": "goddess", "goddess pose": "goddess", "utkata konasana": "goddess",
    "chair pose": "chair", "utkatasana": "chair",
    "plank": "plank", "plank pose": "plank", "phalakasana": "plank",
    "tree": "tree", "tree pose": "tree", "vrksasana": "tree",
    "warrior2": "warrior", "warrior 2": "warrior", "warrior ii": "warrior", "warrior": "warrior",
    "virabhadrasana": "warrior", "virabhadrasana ii": "warrior",
    # workout
    "squat": "squat", "squats": "squat", "front squat": "squat", "goblet squat": "squat",
    "lunge": "lunge", "lunges": "lunge",
    "deadlift": "hinge", "romanian deadlift": "hinge", "good morning": "hinge",
    "push up": "plank", "push-up": "plank", "pushup": "plank", "push ups": "plank",
    "barbell biceps curl": "curl", "biceps curl": "curl", "bicep curl": "curl", "hammer curl": "curl",
    "shoulder press": "overhead", "overhead press": "overhead", "military press": "overhead",
    "lateral raise": "lateral raise", "lateral raises": "lateral raise", "side lateral raise": "lateral raise",
    "tricep pushdown": "pushdown", "triceps pushdown": "pushdown", "cable pushdown": "pushdown",
    "t bar row": "hinge",
    "bench press": "bench", "incline bench press": "bench", "decline bench press": "bench",
    "chest fly machine": "seated", "lat pulldown": "seated", "leg extension": "seated",
    "russian twist": "twist", "tricep dips": "dip", "triceps dips": "dip", "dips": "dip", "bench dips": "dip",
    "pull up": "hang", "pull-up": "hang", "pullup": "hang", "pull ups": "hang", "chin up": "hang",
    "hip thrust": "bridge", "glute bridge": "bridge", "leg raises": "floor", "leg raise": "floor",
    "crunches": "floor", "crunch": "floor", "sit up": "floor", "sit ups": "floor",
    # sports and poses elsewhere
    "standing": "standing", "walking": "standing", "seated": "seated",
    "running": "running", "sprint": "running", "marathon": "running", "hurdles": "running",
    "track": "running", "basketball": "ball", "tennis": "ball", "volleyball": "ball",
    "baseball": "ball", "football": "ball", "rugby": "ball", "golf": "ball", "badminton": "ball",
    "table tennis": "ball", "cricket": "ball", "hockey": "ball", "lacrosse": "ball", "shot put": "ball",
    "boxing": "combat", "kickboxing": "combat", "fencing": "fencing", "judo": "grappling",
    "wrestling": "grappling", "sumo wrestling": "grappling",
    "archery": "standing", "weightlifting": "squat",
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


# What a coach looks for, by profile: the teacher's per-activity cues. Each names a part the checks can
# locate, in the prompt's own words, so a teacher that repeats one is not rejected for it; the sources
# and reasoning are in docs/activity-cues.md.
CUES: dict[str, tuple[str, ...]] = {
    "squat": (
        "feet about shoulder width apart, heels down",
        "knees tracking over the toes, not caving in",
        "hips down to about knee height or lower",
        "chest up and back flat, not rounding",
    ),
    "chair": (
        "feet together or hip width apart, weight in the heels",
        "knees bent and level, tracking over the toes",
        "hips back as if sitting into a chair",
        "arms reaching up beside the ears, shoulders down away from the ears",
        "chest lifted, lower back long rather than arched",
    ),
    "goddess": (
        "a wide stance: feet well wider than the hips, toes turned out",
        "knees bent over the toes and pressing out, thighs toward parallel to the floor",
        "hips sinking straight down, tailbone pointing to the floor",
        "torso upright over the hips",
        "arms at shoulder height with the elbows bent, or the hands together at the chest",
    ),
    "lunge": (
        "the bent LEFT or RIGHT knee over its ankle, not past the toes",
        "the other LEFT or RIGHT knee lowering toward the floor under the hips",
        "hips square to the front and level",
        "torso upright, chest lifted",
    ),
    "warrior": (
        "hips open to the side, facing the long edge of the mat",
        "the bent LEFT or RIGHT knee stacked over its ankle, the thigh toward parallel to the floor",
        "the other LEFT or RIGHT leg straight and strong, the outer edge of its foot pressing down",
        "torso upright over the hips, not leaning toward the bent knee",
        "arms level with the shoulders, reaching long in opposite directions",
        "gaze over the hand on the bent knee's side",
    ),
    "plank": (
        "one straight line from the shoulders through the hips to the heels, hips neither sagging nor piked",
        "shoulders stacked over the wrists or elbows",
        "core braced",
        "neck long, head in line with the spine",
    ),
    "hinge": (
        "hips pushed back",
        "back flat from the hips to the head",
        "a soft bend in the knees",
        "the weight close to the legs",
        "shoulders over or just in front of the hands",
    ),
    "downdog": (
        "hips high, reaching up and back",
        "back long, arms straight and in line with the back",
        "heels reaching toward the floor",
        "head relaxed between the arms",
    ),
    "tree": (
        "the supporting LEFT or RIGHT leg straight but not locked",
        "hips level",
        "the lifted LEFT or RIGHT foot on the inner thigh or the calf, never on the knee",
        "torso tall, arms balanced",
    ),
    "curl": (
        "elbows pinned at the sides",
        "upper arms still",
        "torso upright without swinging",
        "wrists straight",
    ),
    "overhead": (
        "feet planted about hip width apart, the weight over the middle of the feet",
        "ribs down without arching the lower back",
        "elbows under the wrists",
        "head through at the top, arms by the ears",
    ),
    "hang": (
        "shoulders drawn down away from the ears before pulling, not shrugged",
        "chest lifting toward the bar, the chin clearing it at the top",
        "elbows driving down toward the ribs",
        "legs still and together, without swinging or kicking",
        "arms fully straight at the bottom of each repetition",
    ),
    "twist": (
        "torso leaning back from the hips, about halfway to the floor, with a long back",
        "chest lifted and turning from the ribs, not only the arms",
        "knees bent, the feet on the floor or lifted together",
        "hands moving from one side of the hips to the other",
    ),
    "running": (
        "tall posture with a slight forward lean from the ankles",
        "shoulders relaxed and low",
        "arms swinging front to back with the elbows bent at about a right angle",
        "feet landing under the hips, not out in front",
    ),
    "ball": (
        "eyes on the ball or the target through the movement",
        "a stable base: feet about shoulder width or wider, knees flexed",
        "hips and shoulders turning together to drive the throw, swing or shot",
        "the hitting or throwing LEFT or RIGHT arm extending through contact or release",
        "head steady over the base at the finish",
    ),
    "combat": (
        "hands up guarding the chin, elbows in to protect the ribs",
        "chin tucked, eyes on the opponent",
        "knees soft, feet about shoulder width apart, weight on the balls of the feet",
        "strikes and throws driven from the hips, hips and shoulders turning together",
        "hands returning straight to the guard after a strike",
    ),
    "seated": (
        "back upright against the pad",
        "shoulders down and back",
        "a controlled range, elbows and knees in line with the machine's pivot",
    ),
    "bench": (
        "feet planted on the floor, back and hips in contact with the bench",
        "shoulder blades set back and down",
        "wrists straight over the elbows",
        "elbows below the wrists, tucked in at the bottom rather than flared out",
    ),
    "floor": (
        "lower back pressed into the floor",
        "neck long, chin off the chest, the head not pulled by the hands",
        "legs together and moving under control, knees only as bent as the exercise asks",
        "the core doing the work, shoulders relaxed away from the ears",
    ),
    "bridge": (
        "shoulders resting on the bench or floor, feet flat under the knees",
        "hips rising until the shoulders, hips and knees make one line, not arching the lower back",
        "chin tucked and ribs down",
        "knees in line with the feet, not caving in",
    ),
    "dip": (
        "shoulders drawn down away from the ears, chest open",
        "elbows pointing back, not flaring out to the sides",
        "torso close to the bench or bars and upright",
        "lowering until the upper arms are about level with the floor, no deeper",
    ),
    "lateral raise": (
        "arms rising out to the sides up to shoulder height, no higher",
        "elbows soft rather than locked, the same through the lift",
        "shoulders down, not shrugged toward the ears",
        "torso still, without swinging the weight up",
    ),
    "pushdown": (
        "elbows pinned at the sides",
        "upper arms still: only the forearms move",
        "wrists straight",
        "torso upright or leaning forward a little, without rocking",
    ),
    "fencing": (
        "en garde: knees bent over the feet, the weight between both legs",
        "back upright, not leaning toward the opponent",
        "the LEFT or RIGHT elbow of the sword arm soft and in front of the body",
        "the lunge driven by the LEFT or RIGHT rear leg straightening, the other LEFT or RIGHT knee over its ankle",
    ),
    "grappling": (
        "a low, wide base: knees bent, feet wider than the hips",
        "back straight and head up, hips under the shoulders",
        "elbows in close to the body",
        "weight on the balls of the feet, ready to move",
    ),
    "standing": (
        "tall posture, shoulders level over the hips",
        "hips level, weight balanced over both feet",
        "head stacked over the shoulders",
    ),
    "generic": ("head, shoulders and hips in line, as good technique in this activity asks",),
}


def coaching_cues(activity: str) -> str:
    """The activity's cues as the teacher prompt lists them."""
    return "; ".join(CUES[profile_for(activity)]) + "."
