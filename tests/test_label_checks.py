"""Schema 3's checks: what the prompt allows they accept, on real poses; what a coach would not sign they
refuse, each with its one-line reason."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from motioncoach.dataset.prompt import pose_block
from motioncoach.labels import CoachingLabel, RulesLabeler, grounding_problems
from motioncoach.labels.cues import REGIONS, SIDED_PARTS, named_parts
from motioncoach.labels.geometry import JOINTS, camera_view, measure
from motioncoach.labels.schema import read_label
from motioncoach.labels.targets import ACTIVITIES, CUES, coaching_cues
from motioncoach.prompts import system_prompt
from motioncoach.prompts.examples import EXAMPLES
from motioncoach.records import Keypoint
from tests.drawing import drawn, label, point, turn_for
from tests.real_poses import DETECTED, all_poses, detected, hand_made, real_poses


def _problems(sample, *points, **changes) -> list[str]:
    return grounding_problems(CoachingLabel.model_validate(label(*points, **changes)), sample)


def test_the_prompts_examples_pass_the_checks_drawn_on_real_poses():
    prompt = system_prompt()
    for example in EXAMPLES:
        assert f'"{example.script}" ({example.severity})' in prompt
        drawn_on = []
        for name, sample in all_poses():
            confident = sample.confident()
            if example.anchor not in confident or example.along not in confident:
                continue
            turn = turn_for(sample, example.script, example.anchor, example.along)
            if turn is None:  # no room on this pose for what the verb asks (a straight elbow cannot straighten)
                continue
            drawn_point = point(sample, example.script, example.severity, example.anchor, example.along, turn)
            assert _problems(sample, drawn_point) == [], (example.script, name)
            drawn_on.append(name)
        assert set(drawn_on) & set(DETECTED), f"{example.script!r} was drawn on no real pose"


@pytest.mark.parametrize("profile", sorted(CUES))
def test_every_activity_cue_passes_the_checks_drawn_on_a_real_pose(profile):
    activity = next((a for a, p in ACTIVITIES.items() if p == profile), "an unlisted sport")
    for cue in CUES[profile]:
        assert cue in coaching_cues(activity)
        drawn_on = []
        for name, sample in all_poses():
            drawn_point = drawn(sample, cue)
            if drawn_point is None:
                continue
            assert _problems(sample, drawn_point) == [], (cue, name)
            drawn_on.append(name)
        assert set(drawn_on) & set(DETECTED), f"{profile} cue {cue!r} could be drawn on no real pose"


def test_the_cues_for_the_poses_a_coach_corrected():
    assert "hips open to the side" in coaching_cues("warrior2") and "square" not in coaching_cues("warrior2")
    assert "wide stance" in coaching_cues("goddess") and "shoulder width" not in coaching_cues("goddess")
    assert "foot" not in coaching_cues("pull up") and "bar" in coaching_cues("pull-up")
    assert "leaning back" in coaching_cues("russian twist") and "upright" not in coaching_cues("russian twist")
    for sport in ("tennis", "basketball", "boxing", "judo"):
        assert "ready stance" not in coaching_cues(sport)
    assert "front knee" not in coaching_cues("lunges") and "back leg" not in coaching_cues("warrior ii")


def test_the_prompt_lists_every_word_the_checks_understand():
    prompt = " ".join(system_prompt().split())
    for part in SIDED_PARTS:
        for word in (part.name, *part.synonyms):
            assert word in prompt
    for region in REGIONS:
        for word in (region.name, *region.synonyms):
            assert word in prompt
    # What an unsigned angle hides, and how to read a lean from the keypoints instead.
    assert "unsigned" in prompt and "hyperextended" in prompt and "shoulders ahead of the hips lean forward" in prompt


@pytest.mark.parametrize(
    ("script", "words", "keypoints"),
    [
        ("Squeeze your glutes.", "glutes", {"left_hip", "right_hip", "left_shoulder", "right_shoulder"}),
        ("Draw your shoulder blades down.", "shoulder blades", {"left_shoulder", "right_shoulder"}),
        ("Press through your RIGHT calf.", "right calf", {"right_knee", "right_ankle"}),
        ("Squeeze your LEFT glute.", "left glute", {"left_hip"}),
        ("Keep your heels down.", "heels", {"left_ankle", "right_ankle"}),
        ("Brace your abs.", "abs", {"left_shoulder", "right_shoulder", "left_hip", "right_hip"}),
        ("Lengthen your LEFT hamstring.", "left hamstring", {"left_hip", "left_knee"}),
    ],
)
def test_the_words_coaches_use_name_parts_the_checks_locate(script, words, keypoints):
    (named,) = named_parts(script)
    assert named.words == words and set(named.keypoints) == keypoints


def test_coaches_words_drawn_where_the_prompt_says_pass():
    sample = detected("cameraman")
    # A hips cue at a shoulder, along the torso line (as the prompt allows), and at a hip.
    assert _problems(sample, point(sample, "Lift your hips in line.", "major", "left_shoulder", "left_hip", 15)) == []
    assert _problems(sample, point(sample, "Squeeze your glutes.", "minor", "right_hip", "right_shoulder", 15)) == []
    bus = detected("bus, middle")
    calf = point(bus, "Press through your RIGHT calf.", "minor", "right_ankle", "right_knee", -12)
    assert _problems(bus, calf) == []


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("Bend your front knee a little more.", "coaching_script says 'front knee': name the side as LEFT or RIGHT"),
        ("Keep your back knee off the floor.", "coaching_script says 'back knee'"),
        ("Straighten your back leg.", "coaching_script says 'back leg'"),
        ("Bend your knee.", "coaching_script names 'knee' without a side: name a side and joint (LEFT knee)"),
        ("Maintain proper form and keep your body aligned.", "names no body part the checks can locate"),
        ("Bend your LEFT knee twenty degrees more, to 90.", "without digits or degree signs"),
        ("Open your LEFT hip to about 170°.", "without digits or degree signs"),
    ],
)
def test_scripts_that_cannot_be_spoken_or_located_are_refused_with_the_reason(script, reason):
    sample = detected("bus, left")
    with pytest.raises(ValidationError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        CoachingLabel.model_validate(label(point(sample, script, "minor", "left_knee", "left_ankle", -15)))


@pytest.mark.parametrize(
    ("severities", "given", "app"),
    [  # the app's backend: 100 less 12 per major, 5 per intermediate, 2 per minor (backend.py), at least 10
        (["major"], 92, 88),
        (["major"], 38, 88),
        (["minor", "minor", "minor"], 98, 94),
        ([], 20, 100),
        (["intermediate"], 70, 95),
        (["major", "intermediate", "minor"], 13, 81),
    ],
)
def test_the_score_is_the_apps_for_the_corrections_whatever_the_answer_says(severities, given, app):
    sample = detected("bus, left")
    points = [point(sample, "Bend your LEFT knee.", s, "left_knee", "left_ankle", -15) for s in severities]
    assert CoachingLabel.model_validate(label(*points, score=given)).progress_score == app


def test_blank_strings_and_a_zero_delta_read_as_null_and_points_come_major_first():
    sample = detected("bus, left")
    minor = point(sample, "Bend your LEFT knee.", "minor", "left_knee", "left_ankle", -15, positive_note="  ")
    major = point(sample, "Bend your RIGHT elbow.", "major", "right_elbow", "right_wrist", 15, positive_note="Good.")
    middle = point(sample, "Raise your LEFT arm.", "intermediate", "left_shoulder", "left_elbow", -15)
    parsed = CoachingLabel.model_validate(label(minor, major, middle, error_message="", improvement_delta=0))
    assert parsed.error_message is None and parsed.improvement_delta is None
    assert [p.severity for p in parsed.feedback_points] == ["major", "intermediate", "minor"]
    assert [p.positive_note for p in parsed.feedback_points] == ["Good.", None, None]
    assert json.loads(parsed.to_json())["feedback_points"][0]["coaching_script"] == "Bend your RIGHT elbow."
    with pytest.raises(ValidationError, match="says in error_message what is missing"):
        CoachingLabel.model_validate(
            {"status": "low_confidence", "error_message": " ", "positive_note": "", "progress_score": 0,
             "improvement_delta": None, "feedback_points": []}
        )  # fmt: skip


def test_a_target_a_thousandth_from_currents_start_is_the_same_joint():
    sample = detected("bus, left")
    near = point(sample, "Bend your LEFT knee.", "minor", "left_knee", "left_ankle", _closing(sample, "left_knee",
                 "left_ankle", 15))  # fmt: skip
    start = near["visuals"]["vectors"][0]["start"]
    near["visuals"]["vectors"][1]["start"] = [round(start[0], 3) + 0.001, round(start[1], 3) - 0.001]
    assert _problems(sample, near) == []
    near["visuals"]["vectors"][1]["start"] = [start[0] + 0.006, start[1]]
    with pytest.raises(ValidationError, match="same joint"):
        CoachingLabel.model_validate(label(near))


def _closing(sample, anchor: str, along: str, degrees: float) -> float:
    """The signed turn of `degrees` that closes the joint at anchor, the limb towards along turning."""
    from tests.drawing import _angle, _px, _turned

    proximal, _, distal = JOINTS[anchor]
    other = distal if along == proximal else proximal
    at, end, ref = _px(sample, anchor), _px(sample, along), _px(sample, other)
    limb, ref = (end[0] - at[0], end[1] - at[1]), (ref[0] - at[0], ref[1] - at[1])
    return degrees if _angle(_turned(limb, degrees), ref) < _angle(limb, ref) else -degrees


def test_a_target_that_contradicts_its_verb_is_refused_with_the_angles():
    squat = hand_made("deep squat, side view")  # left knee at 76 degrees
    bend = _closing(squat, "left_knee", "left_ankle", 40)
    straighten = point(squat, "Straighten your LEFT knee.", "major", "left_knee", "left_ankle", bend)
    (problem,) = _problems(squat, straighten)
    assert problem.startswith(
        "feedback point 1: the script says 'straighten' but the Target closes the left knee from 76 to 3"
    )
    assert _problems(squat, point(squat, "Bend your LEFT knee.", "major", "left_knee", "left_ankle", bend)) == []
    opened = point(squat, "Bend your LEFT knee more.", "major", "left_knee", "left_ankle", -bend)
    assert "the script says 'bend' but the Target opens the left knee from 76 to 11" in _problems(squat, opened)[0]
    # A part named twice with two verbs: each clause is read for its own part.
    two = point(squat, "Keep your chest up and straighten your LEFT knee.", "major", "left_knee", "left_ankle", -bend)
    assert _problems(squat, two) == []
    # Words that hedge or turn the verb around make no claim.
    hedged = point(squat, "Don't bend your LEFT knee any further.", "major", "left_knee", "left_ankle", -bend)
    assert _problems(squat, hedged) == []


def test_raise_and_lower_follow_the_limb():
    cameraman = detected("cameraman")  # left shoulder at 51 degrees, the arm down and forward
    up = -_closing(cameraman, "left_shoulder", "left_elbow", 25)  # opens the shoulder: the arm goes up
    assert (
        _problems(cameraman, point(cameraman, "Raise your LEFT arm.", "minor", "left_shoulder", "left_elbow", up)) == []
    )
    (problem,) = _problems(
        cameraman, point(cameraman, "Raise your LEFT arm.", "minor", "left_shoulder", "left_elbow", -up)
    )
    assert (
        "the script says 'raise' but the Target closes the left shoulder" in problem
        and "lowers the upper arm" in problem
    )
    lower = point(cameraman, "Lower your LEFT arm a little.", "minor", "left_shoulder", "left_elbow", -up)
    assert _problems(cameraman, lower) == []


def test_a_target_folding_a_limb_or_past_what_a_joint_does_is_refused_whatever_the_words():
    squat = hand_made("deep squat, side view")  # left knee at 76 degrees
    through = _closing(squat, "left_knee", "left_ankle", 100)  # the shin through the thigh
    (problem,) = _problems(squat, point(squat, "Bend your LEFT knee.", "major", "left_knee", "left_ankle", through))
    assert problem == "feedback point 1: the Target folds the shin through the thigh at the left knee"
    past = -_closing(squat, "left_knee", "left_ankle", 150)  # opens it through straight, to 134 the other way
    (problem,) = _problems(squat, point(squat, "Straighten your LEFT knee.", "major", "left_knee", "left_ankle", past))
    assert problem.startswith("feedback point 1: the Target takes the left knee 4") and problem.endswith(
        "degrees past straight, further than it goes"
    )
    # From a joint near straight, a Target just past it is either a straighter joint or a bent one seen
    # mirrored (angles are unsigned): the words decide.
    bus = detected("bus, middle")  # a straight right elbow, at 177 degrees, and the left knee at 173
    opened = -_closing(bus, "right_elbow", "right_wrist", 60)
    (problem,) = _problems(
        bus, point(bus, "Straighten your RIGHT elbow.", "minor", "right_elbow", "right_wrist", opened)
    )
    assert "the script says 'straighten' but the Target closes the right elbow from 177 to 1" in problem
    soft = -_closing(bus, "left_knee", "left_ankle", 10)
    assert _problems(bus, point(bus, "Straighten your LEFT knee.", "minor", "left_knee", "left_ankle", soft)) == []


def test_head_cues_anchored_on_the_head_pass_with_a_head_sized_tolerance():
    from motioncoach.labels.grounding import tolerance_px

    shorter_than_the_body_tolerance = []
    for name, sample in real_poses():
        confident = sample.confident()
        if not {"nose", "left_eye"} <= confident.keys():
            continue
        at = {k: (kp.x * sample.width, kp.y * sample.height) for k, kp in confident.items()}
        head_point = point(sample, "Keep your head level.", "minor", "nose", "left_eye", 15)
        assert _problems(sample, head_point) == [], name
        (nose_x, nose_y), (eye_x, eye_y) = at["nose"], at["left_eye"]
        if ((nose_x - eye_x) ** 2 + (nose_y - eye_y) ** 2) ** 0.5 < tolerance_px(at):
            shorter_than_the_body_tolerance.append(name)
    # The people by the bus: a nose-to-eye arrow shorter than the tolerance the body's size gives.
    assert {"bus, left", "bus, middle"} <= set(shorter_than_the_body_tolerance)


def _without_face(sample):
    keypoints = tuple(
        Keypoint(name=k.name, x=k.x, y=k.y, conf=0.05) if k.name in ("nose", "left_eye", "right_eye") else k
        for k in sample.keypoints
    )
    return sample.model_copy(update={"keypoints": keypoints})


def _seen_from_behind(sample):
    """The same pose with the person turned round: their LEFT on the image's left, the face still 'detected'
    (a detector finds a nose on the back of a head)."""
    return sample.model_copy(update={"keypoints": tuple(k.model_copy(update={"x": 1 - k.x}) for k in sample.keypoints)})


def _crossed(sample):
    """Shoulders in front order, hips in back order: the sides do not say which way the person faces."""
    flipped = {"left_hip": "right_hip", "right_hip": "left_hip"}
    by_name = {k.name: k for k in sample.keypoints}
    return sample.model_copy(update={"keypoints": tuple(
        by_name[flipped[k.name]].model_copy(update={"name": k.name}) if k.name in flipped else k
        for k in sample.keypoints
    )})  # fmt: skip


def test_back_views_are_told_from_front_views_and_printed_as_such():
    front = detected("bus, middle")
    back = _seen_from_behind(front)
    assert camera_view(front) == "front" and camera_view(back) == "back"  # the sides' order, not the nose, decides
    assert camera_view(_without_face(front)) == "front"  # a face turned away or missed: the sides still say front
    assert camera_view(_crossed(front)) == "front" and camera_view(_without_face(_crossed(front))) == "back"
    assert "Camera view (from the keypoints): back (no face detected: the person faces away, so their LEFT is on the " \
           "image's left)" in pose_block(back)  # fmt: skip
    assert pose_block(front).startswith("Camera view (from the keypoints): front")
    assert "side, facing the image's right" in pose_block(hand_made("deep squat, side view"))
    # Knees and hips are not judged from behind any more than from the front.
    squat = hand_made("deep squat, side view").model_copy(update={"activity": "squat"})
    assert {"left_knee", "left_hip"} <= measure(squat).keys()
    assert all("knee" not in p.coaching_script for p in RulesLabeler().label(_seen_from_behind(detected("bus, middle",
               "squat"))).feedback_points)  # fmt: skip


def test_labels_stored_under_schema_2_read_back_as_the_app_reads_them():
    visuals = point(detected("bus, left"), "", "minor", "left_knee", "left_ankle", -15)["visuals"]
    old = {
        "status": "success", "error_message": None, "positive_note": "Good.", "progress_score": 20,
        "improvement_delta": None,
        "feedback_points": [{"mistake_timestamp_ms": 0, "coaching_script": "Bend your LEFT knee.", "visuals": visuals}],
    }  # fmt: skip
    stored = read_label(json.dumps(old))  # a point without a severity reads as intermediate, as the app reads it
    assert [p.severity for p in stored.feedback_points] == ["intermediate"] and stored.progress_score == 95
    with pytest.raises(ValidationError, match="severity"):
        CoachingLabel.model_validate(old)  # a teacher's answer without severities is not a schema-3 label


def test_the_rules_labeler_writes_schema_3_labels_that_pass_its_own_checks():
    for name, sample in all_poses():
        for activity in ("squat", "plank", "warrior2", "russian twist", "standing", sample.activity):
            made = RulesLabeler().label(sample.model_copy(update={"activity": activity}))
            CoachingLabel.model_validate_json(made.to_json())  # the checks a teacher's answer gets
            assert grounding_problems(made, sample) == [], (name, activity, made.feedback_points)
            severities = [p.severity for p in made.feedback_points]
            assert severities == sorted(severities, key=["major", "intermediate", "minor"].index)


@pytest.mark.parametrize("name", ["bus, left", "bus, middle", "deep squat, side view"])
def test_a_target_turned_175_degrees_is_refused_either_way_round(name):
    sample = hand_made(name) if name in ("deep squat, side view",) else detected(name)
    for turn in (175, -175):
        (problem,) = _problems(sample, point(sample, "Bend your LEFT knee.", "major", "left_knee", "left_ankle", turn))
        assert "folds the shin through the thigh" in problem or "further than it" in problem, problem


def test_a_cue_for_one_side_drawn_on_the_other_sides_overlapping_keypoint_is_refused():
    squat = hand_made("deep squat, side view")  # the right knee 10 px behind the left one
    on_left = point(squat, "Push your RIGHT knee out.", "major", "left_knee", "left_ankle", 15)
    (problem,) = _problems(squat, on_left)
    assert problem == "feedback point 1: the script names the right knee but the vectors start at the left knee"
    assert _problems(squat, point(squat, "Push your RIGHT knee out.", "major", "right_knee", "right_ankle", 15)) == []
    assert _problems(squat, point(squat, "Push both knees out.", "major", "left_knee", "left_ankle", 15)) == []


def test_coordinates_a_rounding_step_outside_the_image_are_on_its_edge():
    sample = detected("bus, left")
    edge = point(sample, "Bend your LEFT knee.", "minor", "left_knee", "left_ankle", 15)
    edge["visuals"]["vectors"][1]["end"] = [1.0004, -0.0003]
    parsed = CoachingLabel.model_validate(label(edge))
    assert parsed.feedback_points[0].visuals.vectors[1].end == [1.0, 0.0]
    edge["visuals"]["vectors"][1]["end"] = [1.01, 0.5]
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        CoachingLabel.model_validate(label(edge))


def test_the_teachers_answer_schema_asks_for_a_severity_and_allows_a_points_own_note():
    from motioncoach.teachers.request import SCHEMA_KEYWORDS, label_json_schema

    point_schema = label_json_schema()["properties"]["feedback_points"]["items"]
    assert point_schema["properties"]["severity"]["enum"] == ["major", "intermediate", "minor"]
    assert {"severity", "positive_note"} <= set(point_schema["required"])  # strict output: present, null allowed
    assert {"type": "null"} in point_schema["properties"]["positive_note"]["anyOf"]

    def keywords(node):
        if isinstance(node, dict):
            for key, value in node.items():
                yield key
                yield from keywords(value.values() if key == "properties" else value)
        elif isinstance(node, list | type({}.values())):
            for child in node:
                yield from keywords(child)

    assert set(keywords(label_json_schema())) <= SCHEMA_KEYWORDS


# ---- What a coach would not sign, and what is put right instead of refused -------------------------------------


def _checked(sample, *points, **changes):
    from motioncoach.teachers.validate import check_answer

    return check_answer(json.dumps(label(*points, **changes)), sample)


def _refusal(sample, *points, **changes) -> str:
    from motioncoach.teachers.validate import InvalidAnswer

    with pytest.raises(InvalidAnswer) as refused:
        _checked(sample, *points, **changes)
    return str(refused.value)


def _both_ways(joint: str):
    """A real pose on which both Bend and Straighten can be drawn at the joint, with the two points."""
    for _, sample in all_poses():
        bend = drawn(sample, f"Bend your {joint} a little more.")
        straighten = drawn(sample, f"Straighten your {joint}.")
        if bend and straighten:
            return sample, bend, straighten
    raise AssertionError(f"no real pose lets both ways be drawn at the {joint}")


def test_two_corrections_of_one_joint_or_one_said_twice_are_refused():
    sample, bend, straighten = _both_ways("LEFT knee")
    assert _checked(sample, bend).label and _checked(sample, straighten).label  # each alone is a fine correction
    assert _refusal(sample, bend, straighten) == (
        "incoherent: feedback points 1 and 2 both correct the left knee: one correction per joint"
    )
    again = drawn(sample, "Bend your LEFT knee a little more.", severity="minor")
    assert again
    assert "feedback points 1 and 2 say the same" in _refusal(sample, bend, again)


def test_a_positive_note_praising_the_corrected_part_is_refused_and_other_praise_kept():
    sample = detected("bus, middle")
    bend = drawn(sample, "Bend your LEFT knee a little more.")
    assert _refusal(sample, bend, positive_note="Great knees, well bent.") == (
        "incoherent: the positive note praises the knees, which feedback point 1 corrects"
    )
    assert _checked(sample, bend, positive_note="Calm, level shoulders.").label.positive_note


def test_swapped_colours_and_starts_a_hair_off_are_fixed_and_named():
    sample = detected("bus, middle")
    bend = drawn(sample, "Bend your LEFT knee a little more.")
    exact = _checked(sample, bend).label.feedback_points[0].visuals
    for vector in bend["visuals"]["vectors"]:
        vector["color"] = "green" if vector["label"] == "Current" else "red"
        vector["start"] = [vector["start"][0] + 0.004, vector["start"][1] - 0.003]
    bend["visuals"]["vectors"].reverse()  # Target first
    checked = _checked(sample, bend)
    assert sorted(checked.fixes) == ["colours", "score", "snapped"]  # drawing.label scores 50: the app's is not
    visuals = checked.label.feedback_points[0].visuals
    assert [(v.label, v.color) for v in visuals.vectors] == [("Current", "red"), ("Target", "green")]
    assert [v.start for v in visuals.vectors] == [v.start for v in exact.vectors]
    assert visuals.focus_point == exact.focus_point


def test_fixes_can_be_turned_off_and_a_start_past_the_tolerance_is_never_moved():
    from motioncoach.config import LabelChecks
    from motioncoach.teachers.validate import InvalidAnswer, check_answer

    sample = detected("bus, middle")
    bend = drawn(sample, "Bend your LEFT knee a little more.")
    for vector in bend["visuals"]["vectors"]:
        vector["color"] = "green" if vector["label"] == "Current" else "red"
    with pytest.raises(InvalidAnswer, match="the first vector must be the red 'Current' one"):
        check_answer(json.dumps(label(bend)), sample, LabelChecks(fix=False))
    far = drawn(sample, "Bend your LEFT knee a little more.")
    for vector in far["visuals"]["vectors"]:
        vector["start"] = [vector["start"][0] + 0.2, vector["start"][1]]
    with pytest.raises(InvalidAnswer, match="not grounded"):
        check_answer(json.dumps(label(far)), sample)


@pytest.mark.parametrize(
    ("activity", "says", "never"),
    [
        ("tricep dips", "elbows pointing back", "feet flat"),
        ("fencing", "en garde", "hands up guarding the chin"),
        ("judo", "low, wide base", "hands up guarding the chin"),
        ("wrestling", "low, wide base", "chin tucked behind the lead shoulder"),
        ("crunches", "lower back pressed into the floor", "wrists over the elbows"),
        ("leg raises", "legs together", "wrists over the elbows"),
        ("lateral raise", "shoulder height, no higher", "wrists over the elbows"),
        ("tricep pushdown", "elbows pinned at the sides", "feet flat"),
    ],
)
def test_each_activity_is_coached_with_its_own_cues(activity, says, never):
    cues = coaching_cues(activity)
    assert says in cues and never not in cues
