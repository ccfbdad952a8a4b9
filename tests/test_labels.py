"""The rules labeler's geometry, its labels, the schema and the grounding check."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from motioncoach.errors import LabelError
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
    assert "LEFT knee" in first.coaching_script and "180°" in first.coaching_script
    current, target = first.visuals.vectors
    assert current.start == target.start == [0.40, 0.6]
    assert current.end == [0.40, 0.8]
    assert grounding_problems(label, sample) == []
    assert label.progress_score < 100
    assert CoachingLabel.model_validate_json(label.to_json()) == label


def test_labels_differ_when_the_geometry_does():
    straight = pose({"left_hip": (0.5, 0.2), "left_knee": (0.5, 0.5), "left_ankle": (0.5, 0.8)}, "standing")
    bent = pose({"left_hip": (0.5, 0.2), "left_knee": (0.5, 0.5), "left_ankle": (0.8, 0.55)}, "standing")
    assert RulesLabeler().label(straight).to_json() != RulesLabeler().label(bent).to_json()
    assert RulesLabeler().label(straight).progress_score > RulesLabeler().label(bent).progress_score


def test_face_only_pose_is_a_recorded_failure_not_a_crash():
    with pytest.raises(LabelError, match="no measurable joint angle"):
        RulesLabeler().label(pose({"nose": (0.5, 0.2), "left_eye": (0.45, 0.18), "right_eye": (0.55, 0.18)}))


def _label_json(**changes) -> dict:
    vectors = [
        {"start": [0.5, 0.5], "end": [0.5, 0.7], "color": "red", "label": "Current"},
        {"start": [0.5, 0.5], "end": [0.6, 0.7], "color": "green", "label": "Target"},
    ]
    point = {
        "mistake_timestamp_ms": 0,
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
        ({"feedback_points": []}, "at least 1 item"),
        ({"feedback_points__0__coaching_script": "Bend your knee."}, "LEFT or RIGHT"),
        ({"feedback_points__0__visuals__vectors__1__start": [0.1, 0.1]}, "same joint"),
        ({"feedback_points__0__visuals__vectors__0__end": [1.2, 0.5]}, "less than or equal to 1"),
        ({"feedback_points__0__visuals__vectors__0__color": "green"}, "red 'Current'"),
        ({"status": "error"}, "'success'"),
    ],
)
def test_schema_rejects_malformed_labels(change, message):
    CoachingLabel.model_validate(_label_json())
    with pytest.raises(ValidationError, match=message):
        CoachingLabel.model_validate(_label_json(**change))


def test_grounding_flags_vectors_off_the_body_and_wrong_sides():
    sample = pose({"left_knee": (0.5, 0.5), "left_hip": (0.5, 0.3), "left_ankle": (0.5, 0.7)})
    assert grounding_problems(CoachingLabel.model_validate(_label_json()), sample) == []
    off_body = _label_json(
        feedback_points__0__visuals__vectors__0__start=[0.9, 0.9],
        feedback_points__0__visuals__vectors__1__start=[0.9, 0.9],
    )
    assert "not within" in grounding_problems(CoachingLabel.model_validate(off_body), sample)[0]
    wrong_side = _label_json(feedback_points__0__coaching_script="Bend your RIGHT knee more.")
    assert "says RIGHT" in grounding_problems(CoachingLabel.model_validate(wrong_side), sample)[0]
