"""The rules labeler's geometry, its labels, the schema and the grounding check."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from motioncoach.labels import CoachingLabel, RulesLabeler, grounding_problems
from motioncoach.labels.geometry import measure, rotate_limb, symmetry
from motioncoach.records import KEYPOINT_NAMES, Keypoint, PoseSample


def pose(points: dict[str, tuple[float, float]], activity: str = "squat", width: int = 200, height: int = 100):
    """A sample with the given confident keypoints (normalized) and the rest undetected."""
    keypoints = tuple(
        Keypoint(name=n, x=points[n][0], y=points[n][1], conf=0.9)
        if n in points
        else Keypoint(name=n, x=0, y=0, conf=0)
        for n in KEYPOINT_NAMES
    )
    return PoseSample(
        sha256="0" * 64,
        source_path="/x.jpg",
        activity=activity,
        width=width,
        height=height,
        box_conf=0.9,
        keypoints=keypoints,
    )


def test_knee_angle_is_measured_in_pixels_not_normalized_units():
    # In a 200x100 image: hip (100, 20), knee (100, 60), ankle (140, 60) px -> a right angle.
    sample = pose({"left_hip": (0.5, 0.2), "left_knee": (0.5, 0.6), "left_ankle": (0.7, 0.6)})
    assert measure(sample)["left_knee"].degrees == pytest.approx(90.0)
    # The same normalized points in a 100x200 image: hip (50, 40), knee (50, 120), ankle (70, 120).
    tall = pose({"left_hip": (0.5, 0.2), "left_knee": (0.5, 0.6), "left_ankle": (0.7, 0.6)}, width=100, height=200)
    assert measure(tall)["left_knee"].degrees == pytest.approx(90.0)
    # A 45-degree shin in pixels: ankle 40 px right and 40 px down of the knee, in a 200x100 image.
    bent = pose({"left_hip": (0.5, 0.2), "left_knee": (0.5, 0.4), "left_ankle": (0.7, 0.8)})
    expected = math.degrees(math.acos((0 * 40 + (-40) * 40) / (40 * math.hypot(40, 40))))
    assert measure(bent)["left_knee"].degrees == pytest.approx(expected)


def test_trunk_lean_and_symmetry():
    sample = pose(
        {
            "left_shoulder": (0.6, 0.2),
            "left_hip": (0.5, 0.6),  # 20 px across, 40 px up
            "right_shoulder": (0.6, 0.2),
            "right_hip": (0.5, 0.6),
            "left_knee": (0.5, 0.9),
            "right_knee": (0.6, 0.9),
        }
    )
    angles = measure(sample)
    assert angles["trunk_lean"].degrees == pytest.approx(math.degrees(math.atan2(20, 40)))
    assert symmetry(angles)["hip"] == pytest.approx(abs(angles["left_hip"].degrees - angles["right_hip"].degrees))


def test_rotated_limb_makes_the_target_angle():
    sample = pose({"left_hip": (0.5, 0.2), "left_knee": (0.5, 0.5), "left_ankle": (0.6, 0.8)})
    knee = measure(sample)["left_knee"]
    end = rotate_limb(sample, knee, 100.0)
    moved = pose({"left_hip": (0.5, 0.2), "left_knee": (0.5, 0.5), "left_ankle": end})
    assert measure(moved)["left_knee"].degrees == pytest.approx(100.0, abs=0.01)


def test_rules_label_corrects_the_joint_furthest_out_of_range():
    # A squat with a straight left knee (180) and a well-bent right knee (90).
    sample = pose(
        {
            "left_hip": (0.40, 0.4),
            "left_knee": (0.40, 0.6),
            "left_ankle": (0.40, 0.8),
            "right_hip": (0.60, 0.4),
            "right_knee": (0.60, 0.6),
            "right_ankle": (0.70, 0.6),
        }
    )
    label = RulesLabeler().label(sample)
    first = label.feedback_points[0]
    assert first.coaching_script == "Bend your LEFT knee more."  # spoken: no numbers, degree signs or ranges
    current, target = first.visuals.vectors
    assert current.start == target.start == [0.40, 0.6]
    assert current.end == [0.40, 0.8]
    assert grounding_problems(label, sample) == []
    assert label.progress_score < 100
    assert CoachingLabel.model_validate_json(label.to_json()) == label


def test_labels_differ_when_the_geometry_does():
    upper = {"left_shoulder": (0.5, 0.05), "right_shoulder": (0.505, 0.05), "right_hip": (0.505, 0.2)}  # side on
    straight = pose({**upper, "left_hip": (0.5, 0.2), "left_knee": (0.5, 0.5), "left_ankle": (0.5, 0.8)}, "standing")
    bent = pose({**upper, "left_hip": (0.5, 0.2), "left_knee": (0.5, 0.5), "left_ankle": (0.8, 0.55)}, "standing")
    assert RulesLabeler().label(straight).to_json() != RulesLabeler().label(bent).to_json()
    assert RulesLabeler().label(straight).progress_score > RulesLabeler().label(bent).progress_score


def test_a_face_only_pose_is_an_abstention_not_a_correction():
    label = RulesLabeler().label(pose({"nose": (0.5, 0.2), "left_eye": (0.45, 0.18), "right_eye": (0.55, 0.18)}))
    assert label.status == "low_confidence" and label.feedback_points == [] and label.progress_score == 0
    assert label.error_message.startswith("Too little of the body is visible")


def _label_json(**changes) -> dict:
    vectors = [
        {"start": [0.5, 0.5], "end": [0.5, 0.7], "color": "red", "label": "Current"},
        {"start": [0.5, 0.5], "end": [0.6, 0.7], "color": "green", "label": "Target"},
    ]
    point = {
        "mistake_timestamp_ms": 0,
        "severity": "intermediate",
        "coaching_script": "Bend your LEFT knee more.",
        "visuals": {"overlay_type": "ANGLE_CORRECTION", "focus_point": {"x": 0.5, "y": 0.5}, "vectors": vectors},
    }
    label = {
        "status": "success",
        "error_message": None,
        "positive_note": "Good.",
        "progress_score": 70,
        "improvement_delta": None,
        "feedback_points": [point],
    }
    for path, value in changes.items():
        target = label
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(leaf) if leaf.isdigit() else leaf] = value
    return label


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"progress_score": 101}, "less than or equal to 100"),
        ({"status": "low_confidence"}, "no feedback points"),
        ({"feedback_points__0__coaching_script": "Bend your knee."}, "name a side and joint"),
        ({"error_message": "Blurry."}, "error_message must be null"),
        ({"improvement_delta": 5}, "improvement_delta must be null"),
        ({"feedback_points__0__visuals__vectors__1__start": [0.1, 0.1]}, "same joint"),
        ({"feedback_points__0__visuals__vectors__0__end": [1.2, 0.5]}, "less than or equal to 1"),
        ({"feedback_points__0__visuals__vectors__0__color": "green"}, "red 'Current'"),
        ({"status": "error"}, "'success' or 'low_confidence'"),
    ],
)
def test_schema_rejects_malformed_labels(change, message):
    CoachingLabel.model_validate(_label_json())
    with pytest.raises(ValidationError, match=message):
        CoachingLabel.model_validate(_label_json(**change))


def test_an_abstention_and_a_label_without_corrections_are_valid():
    abstain = {"status": "low_confidence", "error_message": "The body is mostly cut off.", "positive_note": "",
               "progress_score": 0, "improvement_delta": None, "feedback_points": []}  # fmt: skip
    assert CoachingLabel.model_validate(abstain).abstained
    assert CoachingLabel.model_validate(_label_json(feedback_points=[], progress_score=95)).feedback_points == []


def _grounded(sample, **changes) -> list[str]:
    return grounding_problems(CoachingLabel.model_validate(_label_json(**changes)), sample)


def _start(x: float, y: float) -> dict:
    return {
        "feedback_points__0__visuals__vectors__0__start": [x, y],
        "feedback_points__0__visuals__vectors__1__start": [x, y],
        "feedback_points__0__visuals__focus_point": {"x": x, "y": y},
    }


LEG = {"left_hip": (0.5, 0.3), "left_knee": (0.5, 0.5), "left_ankle": (0.5, 0.7), "right_shoulder": (0.6, 0.1),
       "left_shoulder": (0.5, 0.1), "nose": (0.55, 0.02)}  # fmt: skip


def test_grounding_accepts_a_cue_drawn_on_what_it_names():
    sample = pose(LEG)
    assert _grounded(sample) == []  # LEFT knee, arrows from the left knee along the shin
    mixed = "Keep your RIGHT arm still and bend your LEFT knee."  # anchored on the phrase that matches
    assert _grounded(sample, feedback_points__0__coaching_script=mixed) == []
    lowercase = "bend your left knee a little."
    assert _grounded(sample, feedback_points__0__coaching_script=lowercase) == []
    back = {  # a midline cue, anchored on a hip and following the torso
        **_start(0.5, 0.3),
        "feedback_points__0__coaching_script": "Keep your back flat.",
        "feedback_points__0__visuals__vectors__0__end": [0.5, 0.1],
        "feedback_points__0__visuals__vectors__1__end": [0.45, 0.1],
    }
    assert _grounded(sample, **back) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (_start(0.9, 0.9), "more than"),  # off the body
        ({"feedback_points__0__coaching_script": "Bend your RIGHT knee more."}, "names the right knee"),
        (_start(0.5, 0.3), "names the left knee but the vectors start at the left hip"),
        (_start(0.55, 0.02), "names the left knee but the vectors start at the nose"),
        ({"feedback_points__0__visuals__vectors__1__end": [0.5, 0.7]}, "asks for no change"),
        ({"feedback_points__0__visuals__vectors__0__end": [0.7, 0.5]}, "does not follow a limb"),
        ({"feedback_points__0__visuals__focus_point": {"x": 0.2, "y": 0.2}}, "focus_point"),
    ],
)
def test_grounding_rejects_a_drawing_that_disagrees_with_its_words(changes, reason):
    (problem,) = _grounded(pose(LEG), **changes)
    assert reason in problem


def test_grounding_tolerance_is_in_pixels_relative_to_the_person():
    # A 16:9 photo: 0.02 across is 38 px, 0.02 down 22 px. The same pixel offset is judged the same way.
    wide = pose(LEG, width=1920, height=1080)
    tolerance = 0.06 * math.hypot(0.1 * 1920, 0.68 * 1080)  # the keypoints' box: 0.1 wide, 0.68 high
    across = _start(0.5 + (tolerance - 5) / 1920, 0.5)
    down = _start(0.5, 0.5 + (tolerance - 5) / 1080)
    assert _grounded(wide, **across) == [] and _grounded(wide, **down) == []
    assert "more than" in _grounded(wide, **_start(0.5 + (tolerance + 40) / 1920, 0.5))[0]
