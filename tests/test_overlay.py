"""One label drawn over its photo: the app's red and green vectors, and a caption per correction."""

from __future__ import annotations

from PIL import Image

from motioncoach.labels import CoachingLabel, RulesLabeler
from motioncoach.overlay import OVERLAY_HEIGHT, caption_lines, draw_overlay
from tests.drawing import label, point
from tests.real_poses import detected


def _astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def _pixel_along(image: Image.Image, vector, share: float) -> tuple[int, int, int]:
    (x0, y0), (x1, y1) = vector.start, vector.end
    x, y = x0 + (x1 - x0) * share, y0 + (y1 - y0) * share
    return image.getpixel((round(x * OVERLAY_HEIGHT), round(y * OVERLAY_HEIGHT)))  # a square photo


def test_vectors_are_drawn_in_the_apps_colors_with_a_caption_per_correction():
    sample = detected("astronaut")
    elbow = point(sample, "Straighten your LEFT arm at the elbow.", "minor", "left_elbow", "left_wrist", -20)
    shoulder = point(sample, "Raise your RIGHT arm a little.", "major", "right_shoulder", "right_elbow", 20)
    made = CoachingLabel.model_validate(label(elbow, shoulder))
    drawing = draw_overlay(_astronaut(), made, sample, title="teacher")
    assert drawing.width == OVERLAY_HEIGHT and drawing.height > OVERLAY_HEIGHT  # the photo, then its caption
    for correction in made.feedback_points:
        current, target = correction.visuals.vectors
        assert _pixel_along(drawing, current, 0.7) == (255, 0, 0)  # SVG "red"
        assert _pixel_along(drawing, target, 0.7) == (0, 128, 0)  # SVG "green"
    assert caption_lines(made, "teacher") == [
        "teacher",
        f"score {made.progress_score}: Steady and balanced.",
        "1. major: Raise your RIGHT arm a little.",
        "2. minor: Straighten your LEFT arm at the elbow.",
    ]
    bare = draw_overlay(_astronaut(), None, sample, title="adapter: not valid JSON")
    assert bare.size[0] == drawing.size[0] and bare.getpixel((5, 5)) == drawing.getpixel((5, 5))
    assert caption_lines(None, "adapter: not valid JSON") == ["adapter: not valid JSON"]


def test_a_label_without_corrections_and_an_abstention_are_captioned_as_such():
    good = RulesLabeler().label(detected("astronaut"))
    assert good.status == "success" and not good.feedback_points
    lines = caption_lines(good)
    assert lines[0] == "no correction: the form is good (score 100)" and "?" not in " ".join(lines)
    abstained = RulesLabeler().label(detected("grace_hopper"))
    assert caption_lines(abstained, "teacher") == ["teacher", f"abstains: {abstained.error_message}"]
    drawn = draw_overlay(_astronaut(), good, detected("astronaut"))
    assert drawn.height > OVERLAY_HEIGHT
