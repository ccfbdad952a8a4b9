"""Joint angles measured from detected keypoints, in pixel space so the image's aspect counts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from motioncoach.records import PoseSample

# joint -> (proximal keypoint, vertex, distal keypoint). The distal limb is the one a correction
# moves: the shin for a knee, the thigh for a hip, the forearm for an elbow, the upper arm for a
# shoulder.
JOINTS: dict[str, tuple[str, str, str]] = {
    f"{side}_{joint}": (f"{side}_{a}", f"{side}_{joint}", f"{side}_{b}")
    for side in ("left", "right")
    for joint, (a, b) in {
        "knee": ("hip", "ankle"),
        "hip": ("shoulder", "knee"),
        "elbow": ("shoulder", "wrist"),
        "shoulder": ("hip", "elbow"),
    }.items()
}
TRUNK_LEAN = "trunk_lean"
UP = (0.0, -1.0)  # image y grows downwards
# Lines that should be level, measured against the horizontal: (name, left end, right end, shortest span).
# The span is a share of the person's size (the diagonal of the detected keypoints' box): from the side
# the two shoulders or ears overlap, and a tilt read between them is noise, not posture.
LEVEL_LINES = (
    ("shoulder_tilt", "left_shoulder", "right_shoulder", 0.15),
    ("head_tilt", "left_ear", "right_ear", 0.05),
)


@dataclass(frozen=True)
class Angle:
    """One measured angle: the joint, its value in degrees, and the points it was measured from."""

    joint: str
    degrees: float
    vertex: str
    distal: str
    proximal: str | None  # None when measured against a fixed direction instead of a third point
    reference: tuple[float, float] = UP

    @property
    def kind(self) -> str:
        """'knee', 'hip', 'elbow', 'shoulder', 'trunk_lean', 'shoulder_tilt' or 'head_tilt'."""
        return self.joint.split("_", 1)[1] if self.proximal else self.joint

    @property
    def side(self) -> str:
        return self.vertex.split("_", 1)[0]


def to_pixels(sample: PoseSample, name: str) -> tuple[float, float]:
    kp = next(k for k in sample.keypoints if k.name == name)
    return kp.x * sample.width, kp.y * sample.height


def angle_between(u: tuple[float, float], v: tuple[float, float]) -> float | None:
    """Unsigned angle in degrees between two vectors; None when either has no length."""
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu < 1e-6 or nv < 1e-6:
        return None
    cos = (u[0] * v[0] + u[1] * v[1]) / (nu * nv)
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def _sub(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return a[0] - b[0], a[1] - b[1]


def measure(sample: PoseSample, min_conf: float = 0.3) -> dict[str, Angle]:
    """Every angle whose keypoints are all confident: the eight limb joints and the trunk lean."""
    seen = sample.confident(min_conf)
    angles: dict[str, Angle] = {}
    for joint, (proximal, vertex, distal) in JOINTS.items():
        if not {proximal, vertex, distal} <= seen.keys():
            continue
        at = to_pixels(sample, vertex)
        degrees = angle_between(_sub(to_pixels(sample, proximal), at), _sub(to_pixels(sample, distal), at))
        if degrees is not None:
            angles[joint] = Angle(joint, degrees, vertex, distal, proximal)
    # Trunk lean: the hip-to-shoulder line against straight up, on the more confident side.
    sides = [s for s in ("left", "right") if {f"{s}_hip", f"{s}_shoulder"} <= seen.keys()]
    if sides:
        side = max(sides, key=lambda s: seen[f"{s}_hip"].conf + seen[f"{s}_shoulder"].conf)
        hip, shoulder = f"{side}_hip", f"{side}_shoulder"
        degrees = angle_between(_sub(to_pixels(sample, shoulder), to_pixels(sample, hip)), UP)
        if degrees is not None:
            angles[TRUNK_LEAN] = Angle(TRUNK_LEAN, degrees, hip, shoulder, None)
    # Shoulder and head tilt: the left-right line against the horizontal it runs along, which
    # also reads upper-body portraits where no limb joint is visible.
    xs = [to_pixels(sample, n)[0] for n in seen]
    ys = [to_pixels(sample, n)[1] for n in seen]
    size = math.hypot(max(xs) - min(xs), max(ys) - min(ys)) if seen else 0.0
    for name, left, right, shortest in LEVEL_LINES:
        if {left, right} <= seen.keys():
            if math.dist(to_pixels(sample, left), to_pixels(sample, right)) < shortest * size:
                continue
            # Measured from the higher end: that is the one a correction lowers.
            if to_pixels(sample, right)[1] < to_pixels(sample, left)[1]:
                left, right = right, left
            line = _sub(to_pixels(sample, right), to_pixels(sample, left))
            horizontal = (1.0 if line[0] >= 0 else -1.0, 0.0)
            degrees = angle_between(line, horizontal)
            if degrees is not None:
                angles[name] = Angle(name, degrees, left, right, None, horizontal)
    return angles


# Sagittal angles (bending forward and back) read true only from the side; from the front or the back
# a deep squat's knees read nearly straight.
SAGITTAL = frozenset({"knee", "hip", "trunk_lean"})
BROAD_VIEWS = frozenset({"front", "back"})
FACE = ("nose", "left_eye", "right_eye")
# How far the nose must sit ahead of the shoulders, as a share of the torso, to say which way a side view faces.
FACING_SHARE = 0.2


def camera_view(sample: PoseSample, min_conf: float = 0.3) -> str:
    """'front', 'back', 'side', 'oblique' or 'unknown', from the shoulder span against the torso's length.

    A broad view is told front from back by where the person's sides are: their LEFT shoulder and hip on
    the image's right face the camera, on its left turn their back. A detector finds a nose on the back
    of a head often enough that the face decides only when the shoulders and hips disagree or are not
    both seen: then a broad view without a detected nose or eye is a back view."""
    seen = sample.confident(min_conf)
    torso = _torso(sample, seen)
    if torso is None:
        return "unknown"
    span, length, _, _ = torso
    ratio = span / length
    if ratio >= 0.45:
        order = _side_order(sample, seen)
        if order:
            return order
        return "front" if any(k in seen for k in FACE) else "back"
    return "side" if ratio <= 0.2 else "oblique"


def _side_order(sample: PoseSample, seen) -> str:
    """'front' when the LEFT shoulder and the LEFT hip both sit right of their RIGHT ones in the image,
    'back' when both sit left of them, '' when they disagree or a pair is missing."""
    ways = set()
    for joint in ("shoulder", "hip"):
        if {f"left_{joint}", f"right_{joint}"} <= seen.keys():
            ways.add(to_pixels(sample, f"left_{joint}")[0] > to_pixels(sample, f"right_{joint}")[0])
        else:
            return ""
    return ("front" if ways.pop() else "back") if len(ways) == 1 else ""


def facing(sample: PoseSample, min_conf: float = 0.3) -> str:
    """Which way of the image a side or oblique view faces, 'left' or 'right', from the nose against the
    shoulders; '' when the view is broad or the nose is not ahead of them."""
    seen = sample.confident(min_conf)
    torso = _torso(sample, seen)
    if torso is None or "nose" not in seen or camera_view(sample, min_conf) not in ("side", "oblique"):
        return ""
    _, length, mid_shoulder, _ = torso
    ahead = to_pixels(sample, "nose")[0] - mid_shoulder[0]
    if abs(ahead) < FACING_SHARE * length:
        return ""
    return "right" if ahead > 0 else "left"


def view_words(sample: PoseSample, min_conf: float = 0.3) -> str:
    """The camera view as the pose block prints it: 'side, facing the image's left', 'back (face hidden...)'."""
    view = camera_view(sample, min_conf)
    if view == "back":
        return "back (no face detected: the person faces away, so their LEFT is on the image's left)"
    if view == "front":
        return "front (their LEFT is on the image's right)"
    towards = facing(sample, min_conf)
    return f"{view}, facing the image's {towards}" if towards else view


def _torso(sample: PoseSample, seen) -> tuple[float, float, list[float], list[float]] | None:
    """(shoulder span, torso length, mid-shoulder, mid-hip) in pixels, or None when not measurable."""
    if not {"left_shoulder", "right_shoulder"} <= seen.keys():
        return None
    span = math.dist(to_pixels(sample, "left_shoulder"), to_pixels(sample, "right_shoulder"))
    hips = [h for h in ("left_hip", "right_hip") if h in seen]
    if not hips:
        return None
    mid_shoulder = [
        (a + b) / 2
        for a, b in zip(to_pixels(sample, "left_shoulder"), to_pixels(sample, "right_shoulder"), strict=True)
    ]
    mid_hip = [sum(to_pixels(sample, h)[i] for h in hips) / len(hips) for i in (0, 1)]
    length = math.dist(mid_shoulder, mid_hip)
    if length < 1e-6:
        return None
    return span, length, mid_shoulder, mid_hip


def symmetry(angles: dict[str, Angle]) -> dict[str, float]:
    """Left/right difference in degrees for each joint kind measured on both sides."""
    return {
        kind: abs(angles[f"left_{kind}"].degrees - angles[f"right_{kind}"].degrees)
        for kind in ("knee", "hip", "elbow", "shoulder")
        if f"left_{kind}" in angles and f"right_{kind}" in angles
    }


def rotate_limb(sample: PoseSample, angle: Angle, target_degrees: float) -> tuple[float, float]:
    """Where the distal keypoint would be, normalized, if the angle were target_degrees.

    The limb keeps its length and turns about the vertex; the arrow is shortened, not bent, when
    the turned limb would leave the image.
    """
    at = to_pixels(sample, angle.vertex)
    limb = _sub(to_pixels(sample, angle.distal), at)
    reference = _sub(to_pixels(sample, angle.proximal), at) if angle.proximal else angle.reference
    # Turning the limb away from the reference opens the angle; the cross product says which way.
    cross = reference[0] * limb[1] - reference[1] * limb[0]
    turn = math.radians(target_degrees - angle.degrees) * (1 if cross >= 0 else -1)
    cos, sin = math.cos(turn), math.sin(turn)
    turned = (limb[0] * cos - limb[1] * sin, limb[0] * sin + limb[1] * cos)
    start = (at[0] / sample.width, at[1] / sample.height)
    step = (turned[0] / sample.width, turned[1] / sample.height)
    scale = 1.0
    for origin, delta in zip(start, step, strict=True):
        if delta > 0:
            scale = min(scale, (1 - origin) / delta)
        elif delta < 0:
            scale = min(scale, -origin / delta)
    scale = max(scale, 0.0)
    return (
        min(1.0, max(0.0, start[0] + step[0] * scale)),
        min(1.0, max(0.0, start[1] + step[1] * scale)),
    )
