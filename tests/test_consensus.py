"""Consensus between two teachers: every correction compared, in any order, sides that overlap as one."""

from __future__ import annotations

import math

from motioncoach.labels import CoachingLabel
from motioncoach.teachers.consensus import compare, direction_difference, same_part
from tests.drawing import label, point
from tests.real_poses import detected, hand_made

SCORE, ANGLE = 15, 30.0


def _aimed(sample, script: str, severity: str, anchor: str, along: str, degrees: float) -> dict:
    """A point whose Target points at `degrees` in the image (0 = right, 90 = down), a limb's length long."""
    drawn = point(sample, script, severity, anchor, along, 0.0)
    x, y = drawn["visuals"]["vectors"][0]["start"]
    reach = 0.2
    drawn["visuals"]["vectors"][1]["end"] = [
        x + reach * math.cos(math.radians(degrees)) * sample.height / sample.width,
        y + reach * math.sin(math.radians(degrees)),
    ]
    return drawn


def _label(*points) -> CoachingLabel:
    # Built without the checks: these tests are about comparing two labels, not about their drawings.
    return CoachingLabel.model_validate(label(*points))


def test_wrap_around_at_180_degrees():
    assert direction_difference(350, 10) == 20 and direction_difference(10, 350) == 20
    assert direction_difference(170, 190) == 20 and direction_difference(170, -170) == 20
    assert direction_difference(90, -90) == 180


def test_targets_either_side_of_the_wrap_agree_and_opposite_ones_do_not():
    bus = detected("bus, middle")
    for a, b in ((350, 10), (170, 190)):
        first = _label(_aimed(bus, "Bend your LEFT knee.", "major", "left_knee", "left_ankle", a))
        second = _label(_aimed(bus, "Bend your LEFT knee.", "major", "left_knee", "left_ankle", b))
        agreement = compare(first, second, bus, SCORE, ANGLE)
        assert agreement.agree, agreement.reasons
        assert abs(agreement.target_angle_difference - 20.0) < 0.5
    apart = compare(
        _label(_aimed(bus, "Bend your LEFT knee.", "major", "left_knee", "left_ankle", 100)),
        _label(_aimed(bus, "Bend your LEFT knee.", "major", "left_knee", "left_ankle", 150)),
        bus, SCORE, ANGLE,
    )  # fmt: skip
    assert not apart.agree and apart.reasons == ["Target vectors at the left knee point 50° apart (> 30°)"]


def test_the_same_corrections_in_another_order_agree():
    bus = detected("bus, middle")
    knee = _aimed(bus, "Bend your LEFT knee.", "major", "left_knee", "left_ankle", 120)
    elbow = _aimed(bus, "Bend your RIGHT elbow.", "major", "right_elbow", "right_wrist", 45)
    hips = _aimed(bus, "Level your hips.", "major", "left_hip", "right_hip", 170)
    one, other = _label(knee, elbow, hips), _label(hips, knee, elbow)
    assert [p.coaching_script for p in one.feedback_points] != [p.coaching_script for p in other.feedback_points]
    agreement = compare(one, other, bus, SCORE, ANGLE)
    assert agreement.agree, agreement.reasons
    # The second and third corrections count too: one of them pointing elsewhere is a disagreement.
    turned = _aimed(bus, "Bend your RIGHT elbow.", "major", "right_elbow", "right_wrist", 135)
    disagree = compare(one, _label(hips, knee, turned), bus, SCORE, ANGLE)
    assert not disagree.agree and disagree.reasons == ["Target vectors at the right elbow point 90° apart (> 30°)"]


def test_corrections_at_different_joints_disagree_on_the_focus_joint():
    bus = detected("bus, middle")
    knee = _aimed(bus, "Bend your LEFT knee.", "major", "left_knee", "left_ankle", 120)
    elbow = _aimed(bus, "Bend your LEFT elbow.", "major", "left_elbow", "left_wrist", 120)
    agreement = compare(_label(knee), _label(elbow), bus, SCORE, ANGLE)
    assert not agreement.agree and agreement.joints == ("left_knee", "left_elbow")
    assert agreement.reasons == ["focus joint differs: left_knee vs left_elbow"]
    # The left and right knee of a front view are two parts: far apart in the photo.
    right = _aimed(bus, "Bend your RIGHT knee.", "major", "right_knee", "right_ankle", 120)
    assert compare(_label(knee), _label(right), bus, SCORE, ANGLE).reasons == [
        "focus joint differs: left_knee vs right_knee"
    ]
    more = compare(_label(knee), _label(knee, elbow), bus, SCORE, ANGLE)
    assert not more.agree and more.reasons == ["one teacher makes 1 corrections, the other 2"]


def test_left_and_right_that_overlap_in_a_side_view_are_one_part():
    squat = hand_made("deep squat, side view")  # the right knee 10 px behind the left one
    assert same_part("left_knee", "right_knee", squat) and not same_part(
        "left_knee", "right_knee", detected("bus, middle")
    )
    left = _aimed(squat, "Push your LEFT knee out.", "major", "left_knee", "left_ankle", 100)
    right = _aimed(squat, "Push your RIGHT knee out.", "major", "right_knee", "right_ankle", 110)
    agreement = compare(_label(left), _label(right), squat, SCORE, ANGLE)
    assert agreement.agree, agreement.reasons


def test_scores_statuses_and_empty_corrections_still_decide():
    bus = detected("bus, middle")
    knee = _aimed(bus, "Bend your LEFT knee.", "minor", "left_knee", "left_ankle", 120)
    elbow = _aimed(bus, "Bend your RIGHT elbow.", "minor", "right_elbow", "right_wrist", 60)
    grave = [{**p, "severity": "major"} for p in (knee, elbow)]
    # The scores are the app's: 100 - 2 - 2 = 96 for two minor corrections, 100 - 12 - 12 = 76 for two major ones.
    assert compare(_label(knee, elbow), _label(*grave), bus, SCORE, ANGLE).reasons == [
        "progress_score differs by 20 (> 15)"
    ]
    assert compare(_label(knee), _label(), bus, SCORE, ANGLE).reasons == [
        "one teacher corrects the form, the other finds nothing to correct"
    ]
    assert compare(_label(), _label(), bus, SCORE, ANGLE).agree
