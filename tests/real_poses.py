"""Poses to draw labels on: yolo11n-pose detections of real photos, and hand-made poses of what the
sample photos lack (a squat and a plank seen from the side).

The detections are of the offline sample photos (`motioncoach.sources.samples`): the astronaut and
Grace Hopper (as in tests/release_data.py), the cameraman, two of the people standing by the bus and
the man on the right in zidane.jpg; (x, y, conf) per COCO keypoint, normalized.
"""

from __future__ import annotations

from pathlib import Path

from motioncoach.records import KEYPOINT_NAMES, Keypoint, PoseSample
from tests.release_data import POSES as RELEASE_POSES

# name -> (activity, width, height, detection)
DETECTED: dict[str, tuple[str, int, int, list[tuple[float, float, float]]]] = {
    "astronaut": ("standing", 512, 512, RELEASE_POSES["astronaut.png"][1]),
    "grace_hopper": ("seated", 512, 600, RELEASE_POSES["grace_hopper.jpg"][1]),
    "cameraman": ("photography", 512, 512, [
        (0.4839, 0.3217, 0.992), (0.5002, 0.3006, 0.265), (0.4722, 0.2874, 0.998), (0.4643, 0.2818, 0.002),
        (0.3883, 0.2529, 0.999), (0.4002, 0.3547, 0.997), (0.2096, 0.3513, 0.999), (0.4616, 0.5403, 0.954),
        (0.1797, 0.5879, 0.991), (0.5365, 0.486, 0.937), (0.3599, 0.4602, 0.979), (0.1892, 0.6818, 0.99),
        (0.0582, 0.6875, 0.992), (0.2543, 0.892, 0.5), (0.1345, 0.9127, 0.543), (0.2084, 0.9881, 0.014),
        (0.1281, 0.9868, 0.009),
    ]),
    "bus, left": ("walking", 810, 1080, [
        (0.1758, 0.4091, 0.991), (0.1827, 0.3995, 0.929), (0.1612, 0.4013, 0.987), (0.188, 0.4051, 0.427),
        (0.1323, 0.408, 0.931), (0.1944, 0.4566, 0.991), (0.1164, 0.4623, 0.998), (0.2179, 0.5102, 0.925),
        (0.1366, 0.5255, 0.988), (0.2151, 0.4929, 0.902), (0.2, 0.4948, 0.974), (0.1837, 0.5973, 0.997),
        (0.123, 0.6013, 0.998), (0.2208, 0.6938, 0.995), (0.117, 0.7005, 0.997), (0.2296, 0.7868, 0.979),
        (0.0913, 0.7946, 0.986),
    ]),
    "bus, middle": ("walking", 810, 1080, [
        (0.3612, 0.4175, 0.989), (0.3684, 0.409, 0.933), (0.3496, 0.4105, 0.979), (0.375, 0.4125, 0.555),
        (0.3275, 0.4157, 0.909), (0.3928, 0.4587, 0.995), (0.3098, 0.4622, 0.998), (0.4059, 0.5128, 0.946),
        (0.3094, 0.5323, 0.978), (0.345, 0.4954, 0.913), (0.3117, 0.5701, 0.948), (0.3747, 0.5833, 0.998),
        (0.3201, 0.5829, 0.999), (0.3717, 0.67, 0.995), (0.3224, 0.6646, 0.996), (0.3558, 0.7465, 0.977),
        (0.3217, 0.7456, 0.98),
    ]),
    "zidane, right": ("football", 1280, 720, [
        (0.781, 0.2811, 0.995), (0.8019, 0.2404, 0.978), (0.7533, 0.2343, 0.994), (0.8218, 0.2585, 0.52),
        (0.7072, 0.2466, 0.937), (0.8191, 0.4687, 0.948), (0.6672, 0.4542, 0.99), (0.832, 0.7222, 0.559),
        (0.6127, 0.7269, 0.91), (0.8527, 0.6734, 0.553), (0.7504, 0.6386, 0.873), (0.8082, 1.0, 0.477),
        (0.7034, 1.0, 0.655), (0.8395, 1.0, 0.019), (0.7191, 1.0, 0.037), (0.8375, 1.0, 0.003),
        (0.6996, 1.0, 0.005),
    ]),
}  # fmt: skip

# Hand-made, in a 1000 x 1000 photo (as bench/rules_examples.py): the right side a few pixels behind the left.
HAND_MADE: dict[str, tuple[str, dict[str, tuple[float, float]]]] = {
    "deep squat, side view": ("squat", {
        "nose": (0.56, 0.25), "left_eye": (0.55, 0.24), "left_ear": (0.53, 0.25), "right_ear": (0.535, 0.251),
        "left_shoulder": (0.5, 0.35), "right_shoulder": (0.49, 0.352), "left_elbow": (0.6, 0.42),
        "right_elbow": (0.59, 0.422), "left_wrist": (0.72, 0.42), "right_wrist": (0.71, 0.421),
        "left_hip": (0.4, 0.6), "right_hip": (0.39, 0.602), "left_knee": (0.62, 0.62), "right_knee": (0.61, 0.622),
        "left_ankle": (0.52, 0.9), "right_ankle": (0.51, 0.9)}),
    "plank, hips sagging": ("plank", {
        "nose": (0.22, 0.48), "left_eye": (0.235, 0.47), "left_ear": (0.26, 0.475), "left_shoulder": (0.3, 0.5),
        "right_shoulder": (0.31, 0.502), "left_elbow": (0.3, 0.65), "right_elbow": (0.31, 0.652),
        "left_wrist": (0.38, 0.65), "right_wrist": (0.39, 0.652), "left_hip": (0.55, 0.64), "right_hip": (0.56, 0.642),
        "left_knee": (0.72, 0.62), "right_knee": (0.73, 0.622), "left_ankle": (0.9, 0.6),
        "right_ankle": (0.91, 0.602)}),
}  # fmt: skip


def detected(name: str, activity: str | None = None) -> PoseSample:
    own, width, height, points = DETECTED[name]
    keypoints = tuple(Keypoint(name=n, x=x, y=y, conf=c) for n, (x, y, c) in zip(KEYPOINT_NAMES, points, strict=True))
    return PoseSample(sha256="0" * 64, source_path=Path(f"/{name}.jpg"), activity=activity or own, width=width,
                      height=height, box_conf=0.9, keypoints=keypoints)  # fmt: skip


def hand_made(name: str, activity: str | None = None) -> PoseSample:
    own, points = HAND_MADE[name]
    keypoints = tuple(
        Keypoint(name=n, x=points[n][0], y=points[n][1], conf=0.9)
        if n in points
        else Keypoint(name=n, x=0, y=0, conf=0)
        for n in KEYPOINT_NAMES
    )
    return PoseSample(sha256="0" * 64, source_path=Path(f"/{name}.jpg"), activity=activity or own, width=1000,
                      height=1000, box_conf=0.9, keypoints=keypoints)  # fmt: skip


def real_poses() -> list[tuple[str, PoseSample]]:
    """Every detected pose, by name."""
    return [(name, detected(name)) for name in DETECTED]


def all_poses() -> list[tuple[str, PoseSample]]:
    return real_poses() + [(name, hand_made(name)) for name in HAND_MADE]
