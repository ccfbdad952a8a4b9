"""The rules labeler on the sample photos and on hand-made poses, as a markdown table.

    uv run python bench/rules_examples.py [--no-photos]

Rows: the offline sample photos through the local pose filter (yolo11n-pose), then hand-made
keypoint sets a coach can judge at a glance: a deep squat seen from the front and from the side, a
plank, a tree pose with the arms overhead, an upright stance seen from the side, a Russian twist
sitting upright, a Warrior II with drooping arms, and a face-only tennis crop. docs/rules-labeler.md
holds the table before and after the label-quality changes, and under schema 3 (each cue with its
severity).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from motioncoach.labels.rules import RulesLabeler  # noqa: E402
from motioncoach.records import KEYPOINT_NAMES, Keypoint, PoseSample  # noqa: E402

_HEAD = {"nose": (0.5, 0.2), "left_ear": (0.53, 0.2), "right_ear": (0.47, 0.2)}
POSES: dict[str, tuple[str, dict[str, tuple[float, float]]]] = {
    "deep squat, front view": ("squat", {
        **_HEAD, "left_shoulder": (0.6, 0.3), "right_shoulder": (0.4, 0.3), "left_elbow": (0.58, 0.4),
        "right_elbow": (0.42, 0.4), "left_wrist": (0.55, 0.38), "right_wrist": (0.45, 0.38),
        "left_hip": (0.58, 0.55), "right_hip": (0.42, 0.55), "left_knee": (0.62, 0.72), "right_knee": (0.38, 0.72),
        "left_ankle": (0.6, 0.9), "right_ankle": (0.4, 0.9)}),
    "deep squat, side view": ("squat", {
        "nose": (0.56, 0.25), "left_ear": (0.53, 0.25), "right_ear": (0.535, 0.251),
        "left_shoulder": (0.5, 0.35), "right_shoulder": (0.49, 0.352), "left_elbow": (0.6, 0.42),
        "right_elbow": (0.59, 0.422), "left_wrist": (0.72, 0.42), "right_wrist": (0.71, 0.421),
        "left_hip": (0.4, 0.6), "right_hip": (0.39, 0.602), "left_knee": (0.62, 0.62), "right_knee": (0.61, 0.622),
        "left_ankle": (0.52, 0.9), "right_ankle": (0.51, 0.9)}),
    "plank, side view": ("plank", {
        "nose": (0.22, 0.48), "left_shoulder": (0.3, 0.5), "right_shoulder": (0.31, 0.502), "left_elbow": (0.3, 0.65),
        "right_elbow": (0.31, 0.652), "left_wrist": (0.38, 0.65), "right_wrist": (0.39, 0.652),
        "left_hip": (0.55, 0.53), "right_hip": (0.56, 0.532), "left_knee": (0.72, 0.56), "right_knee": (0.73, 0.562),
        "left_ankle": (0.9, 0.6), "right_ankle": (0.91, 0.602)}),
    "tree pose, arms overhead": ("tree", {
        **_HEAD, "left_shoulder": (0.58, 0.3), "right_shoulder": (0.42, 0.3), "left_elbow": (0.6, 0.18),
        "right_elbow": (0.4, 0.18), "left_wrist": (0.52, 0.06), "right_wrist": (0.48, 0.06),
        "left_hip": (0.56, 0.55), "right_hip": (0.44, 0.55), "left_knee": (0.72, 0.66), "right_knee": (0.44, 0.75),
        "left_ankle": (0.5, 0.72), "right_ankle": (0.44, 0.95)}),
    "upright, side view": ("standing", {
        "nose": (0.55, 0.12), "left_ear": (0.5, 0.1), "right_ear": (0.505, 0.13), "left_shoulder": (0.5, 0.25),
        "right_shoulder": (0.507, 0.2), "left_elbow": (0.5, 0.42), "right_elbow": (0.51, 0.42),
        "left_wrist": (0.5, 0.56), "right_wrist": (0.51, 0.56), "left_hip": (0.5, 0.55), "right_hip": (0.51, 0.55),
        "left_knee": (0.5, 0.75), "right_knee": (0.51, 0.75), "left_ankle": (0.5, 0.95), "right_ankle": (0.51, 0.95)}),
    "shallow squat, side view": ("squat", {
        "nose": (0.5, 0.12), "left_ear": (0.47, 0.12), "right_ear": (0.472, 0.121), "left_shoulder": (0.45, 0.25),
        "right_shoulder": (0.44, 0.252), "left_elbow": (0.55, 0.3), "right_elbow": (0.54, 0.302),
        "left_wrist": (0.65, 0.3), "right_wrist": (0.64, 0.302), "left_hip": (0.4, 0.52), "right_hip": (0.39, 0.522),
        "left_knee": (0.5, 0.72), "right_knee": (0.49, 0.722), "left_ankle": (0.45, 0.93),
        "right_ankle": (0.44, 0.93)}),
    "plank, hips sagging": ("plank", {
        "nose": (0.22, 0.48), "left_shoulder": (0.3, 0.5), "right_shoulder": (0.31, 0.502), "left_elbow": (0.3, 0.65),
        "right_elbow": (0.31, 0.652), "left_wrist": (0.38, 0.65), "right_wrist": (0.39, 0.652),
        "left_hip": (0.55, 0.64), "right_hip": (0.56, 0.642), "left_knee": (0.72, 0.62), "right_knee": (0.73, 0.622),
        "left_ankle": (0.9, 0.6), "right_ankle": (0.91, 0.602)}),
    "russian twist, sitting upright": ("russian twist", {
        "nose": (0.53, 0.3), "left_ear": (0.5, 0.3), "right_ear": (0.505, 0.302), "left_shoulder": (0.5, 0.4),
        "right_shoulder": (0.505, 0.402), "left_elbow": (0.58, 0.5), "right_elbow": (0.585, 0.502),
        "left_wrist": (0.65, 0.48), "right_wrist": (0.655, 0.482), "left_hip": (0.5, 0.7), "right_hip": (0.505, 0.702),
        "left_knee": (0.65, 0.55), "right_knee": (0.655, 0.552), "left_ankle": (0.8, 0.7),
        "right_ankle": (0.805, 0.702)}),
    "warrior II, arms drooping": ("warrior2", {
        **_HEAD, "left_shoulder": (0.58, 0.3), "right_shoulder": (0.42, 0.3), "left_elbow": (0.68, 0.38),
        "right_elbow": (0.32, 0.38), "left_wrist": (0.78, 0.46), "right_wrist": (0.22, 0.46),
        "left_hip": (0.55, 0.55), "right_hip": (0.45, 0.55), "left_knee": (0.7, 0.7), "right_knee": (0.35, 0.72),
        "left_ankle": (0.72, 0.9), "right_ankle": (0.25, 0.9)}),
    "face only": ("tennis", {"nose": (0.5, 0.4), "left_eye": (0.55, 0.35), "right_eye": (0.45, 0.35),
                             "left_ear": (0.6, 0.37), "right_ear": (0.4, 0.39)}),
}  # fmt: skip


def hand_made(name: str) -> PoseSample:
    activity, points = POSES[name]
    keypoints = tuple(
        Keypoint(name=n, x=points[n][0], y=points[n][1], conf=0.9)
        if n in points
        else Keypoint(name=n, x=0, y=0, conf=0)
        for n in KEYPOINT_NAMES
    )
    return PoseSample(sha256="0" * 64, source_path=Path(f"/{name}.jpg"), activity=activity, width=1000,
                      height=1000, box_conf=0.9, keypoints=keypoints)  # fmt: skip


def photo_samples() -> list[tuple[str, PoseSample]]:
    from motioncoach.config import PoseFilterConfig, SourceConfig
    from motioncoach.pose import CACHE_FILE_NAME, filter_poses
    from motioncoach.sources import collect_images

    data = Path(tempfile.mkdtemp())
    report = filter_poses(collect_images(SourceConfig(), data), PoseFilterConfig(), data / CACHE_FILE_NAME)
    return [(f"photo {s.source_path.name} ({s.activity})", s) for s in report.kept]


def row(name: str, sample: PoseSample) -> str:
    try:
        label = RulesLabeler().label(sample)
    except Exception as exc:  # the labeler before abstentions raised for what it could not read
        return f"| {name} | {sample.activity} | failed: {exc} | | |"
    cues = " / ".join(f"{p.coaching_script} ({p.severity})" if hasattr(p, "severity") else p.coaching_script
                      for p in label.feedback_points) or "(no correction)"  # fmt: skip
    if getattr(label, "status", "success") != "success":
        cues = f"abstains: {label.error_message}"
    return f"| {name} | {sample.activity} | {label.progress_score} | {cues} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-photos", action="store_true", help="Only the hand-made poses (no YOLO run).")
    args = parser.parse_args()
    rows = [] if args.no_photos else photo_samples()
    rows += [(name, hand_made(name)) for name in POSES]
    print("| pose | activity | score | cues |\n|---|---|---|---|")
    for name, sample in rows:
        print(row(name, sample))


if __name__ == "__main__":
    main()
