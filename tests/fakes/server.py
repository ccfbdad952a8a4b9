"""A threaded HTTP server on 127.0.0.1 and what both fake teachers share: knobs, faults, counters, answers."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from motioncoach.labels.grounding import NEIGHBOURS
from motioncoach.labels.schema import CoachingLabel

# Faults answered with an HTTP error; the rest change the answer text (or, for "hang", its timing).
TRANSIENT_FAULTS = ("rate_limit", "server_error", "unavailable")
# Errors no retry cures: the request itself is refused (400) or the account cannot pay (402).
REFUSAL_FAULTS = ("bad_request", "no_credits")
ERROR_FAULTS = (*TRANSIENT_FAULTS, *REFUSAL_FAULTS)
TEXT_FAULTS = (
    "truncated", "schema_violation", "ungrounded", "wrong_side", "wrong_joint", "no_change", "blocked",
    "midline", "abstain",
)  # fmt: skip
FAULTS = (*ERROR_FAULTS, "hang", *TEXT_FAULTS)

# A limb joint makes a plausible correction; an eye or an ear would not.
_JOINT_PREFERENCE = ("knee", "elbow", "hip", "shoulder", "ankle", "wrist")
# The limb a correction at each joint follows: the next keypoint outwards, else inwards.
_NEXT = {"knee": ("ankle", "hip"), "elbow": ("wrist", "shoulder"), "hip": ("knee", "shoulder"),
         "shoulder": ("elbow", "hip"), "ankle": ("knee",), "wrist": ("elbow",)}  # fmt: skip
_SIZE = re.compile(r"Photo(?: size)?: (\d+)x(\d+) pixels")
_KEYPOINT = re.compile(r"^\s*([a-z]+(?:_[a-z]+)*)\s*:\s*\[\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\]", re.MULTILINE)


@dataclass(frozen=True)
class Call:
    """One labeling request as a fake received it."""

    number: int  # 1-based, in arrival order over the server's life
    image_sha: str  # sha256 of the inline image bytes
    attempt: int  # 1-based, per image
    prompt: str
    system: str


@dataclass
class Reply:
    """What a protocol handler answers: a status, a JSON body (or raw bytes) and extra headers."""

    status: int
    body: dict | bytes
    headers: dict[str, str] = field(default_factory=dict)


FaultSchedule = Callable[[Call], str | None] | Sequence[str | None] | None


class FakeTeacherServer:
    """Base of the fakes: a context-managed server with knobs that may change while it runs.

    faults: a callable Call -> fault name or None, or a list whose i-th item applies to the
    i-th labeling request (None: answer normally). When it names no fault, fault_rate picks one of
    random_faults with a seeded RNG. answer: Call -> text replaces the default grounded label.
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        latency: float = 0.0,
        faults: FaultSchedule = None,
        fault_rate: float = 0.0,
        random_faults: Sequence[str] = TRANSIENT_FAULTS,
        seed: int = 0,
        answer: Callable[[Call], str] | None = None,
        retry_after: float | None = 7,
        hang_s: float = 30.0,
    ):
        self.api_key = api_key
        self.latency = latency
        self.faults = faults
        self.fault_rate = fault_rate
        self.random_faults = tuple(random_faults)
        self.answer = answer
        self.retry_after = retry_after
        self.hang_s = hang_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self.reset_counters()

    # --- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> FakeTeacherServer:
        self._closing.clear()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._closing.set()  # releases hanging handlers at once
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT, without a trailing slash."""
        assert self._httpd is not None, "use the fake as a context manager"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # --- counters --------------------------------------------------------------------------------

    def reset_counters(self) -> None:
        with self._lock:
            self.http_requests = 0  # every HTTP request, batch polls and rejected keys included
            self.requests = 0  # labeling requests with a valid key (each inlined batch request counts)
            self.requests_per_image: Counter[str] = Counter()
            self.faults_served: Counter[str] = Counter()
            self.last_request: dict | None = None  # the JSON body of the latest labeling request
            self.errors: list[str] = []  # exceptions the fake raised while answering
            self.in_flight = 0
            self.max_in_flight = 0

    def register(self, image: bytes, prompt: str, system: str = "") -> Call:
        """Count one labeling request and describe it."""
        sha = hashlib.sha256(image).hexdigest()
        with self._lock:
            self.requests += 1
            self.requests_per_image[sha] += 1
            return Call(self.requests, sha, self.requests_per_image[sha], prompt, system)

    # --- behaviour -------------------------------------------------------------------------------

    def fault_for(self, call: Call) -> str | None:
        """The fault this request gets: the schedule's, else a random one at fault_rate."""
        schedule = self.faults
        if callable(schedule):
            fault = schedule(call)
        elif schedule is not None and call.number <= len(schedule):
            fault = schedule[call.number - 1]
        else:
            fault = None
        if fault is None and self.fault_rate > 0:
            with self._lock:
                if self._rng.random() < self.fault_rate:
                    fault = self._rng.choice(self.random_faults)
        if fault is not None:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
            with self._lock:
                self.faults_served[fault] += 1
        return fault

    def wait(self, fault: str | None) -> None:
        """The injected latency; a hang holds the answer for hang_s (or until the server closes)."""
        if self.latency:
            time.sleep(self.latency)
        if fault == "hang":
            self._closing.wait(self.hang_s)

    def answer_text(self, call: Call, fault: str | None) -> str:
        """The model's text for a request that got no HTTP error."""
        if fault == "blocked":
            return ""
        if fault == "schema_violation":
            return json.dumps({"status": "success", "progress_score": 150, "feedback_points": []})
        if fault in ("ungrounded", "wrong_side", "wrong_joint", "no_change", "midline", "abstain"):
            return grounded_label(call.prompt, fault=fault).to_json()
        text = self.answer(call) if self.answer else grounded_label(call.prompt).to_json()
        return text[: len(text) // 2] if fault == "truncated" else text

    def route(self, method: str, path: str, headers, body: bytes) -> Reply:  # pragma: no cover - abstract
        raise NotImplementedError


def parse_keypoints(prompt: str) -> dict[str, tuple[float, float]]:
    """Keypoint lines of a prompt, like `left_knee: [0.512, 0.733]`, in order."""
    return {m.group(1): (float(m.group(2)), float(m.group(3))) for m in _KEYPOINT.finditer(prompt)}


def grounded_label(prompt: str, fault: str | None = None) -> CoachingLabel:
    """A valid label for the prompt's keypoints, as a careful teacher writes it.

    By default a sided correction of intermediate severity: "Bend your LEFT knee a little more.", both
    arrows on the left knee, Current along the shin to the ankle, Target turned 25 degrees the way that
    closes the knee (towards the hip), as the verb says. fault="midline": "Keep your
    back flat", anchored on a hip along the torso. fault="abstain": a low_confidence label.
    Faults a strict check must catch: "wrong_side" names the other side, "ungrounded" starts far from
    every keypoint, "wrong_joint" names a knee but starts at a shoulder, "no_change" sets Target on
    Current.
    """
    if fault == "abstain":
        return CoachingLabel(
            status="low_confidence", error_message="No person is doing the activity in this photo.",
            positive_note="", progress_score=0, improvement_delta=None, feedback_points=[],
        )  # fmt: skip
    points = parse_keypoints(prompt)
    size = _SIZE.search(prompt)
    width, height = (int(size.group(1)), int(size.group(2))) if size else (1, 1)
    if fault == "midline":
        anchor = next((n for n in ("left_hip", "right_hip") if n in points), None)
        toward = anchor.replace("hip", "shoulder") if anchor else None
        words = "Keep your back flat and your chest up."
    else:
        if fault == "wrong_joint":
            anchor = next((n for n in ("left_shoulder", "right_shoulder") if n in points), None)
        else:
            sided = sorted((n for n in points if n.startswith(("left_", "right_"))), key=_preference)
            anchor = sided[0] if sided else next(iter(points), None)
        side, _, joint = (anchor or "left_knee").partition("_")
        toward = next((f"{side}_{n}" for n in _NEXT.get(joint, ()) if f"{side}_{n}" in points), None)
        toward = toward or next((n for n in sorted(NEIGHBOURS.get(anchor or "", ())) if n in points), None)
        named = joint.replace("_", " ")
        if fault == "wrong_side":
            side = "right" if side == "left" else "left"
        if fault == "wrong_joint":  # a knee the detector found, while the arrows sit on a shoulder
            side = next((n.partition("_")[0] for n in ("left_knee", "right_knee") if n in points), "left")
            named = "knee"
        words = f"Bend your {side.upper()} {named} a little more."
    x, y = points.get(anchor, (0.5, 0.5)) if anchor else (0.5, 0.5)
    if fault == "ungrounded":
        x, y = _far_from(points.values())
    end_x, end_y = points[toward] if toward in points else (_clip(x), _clip(y + 0.15))
    turned = 0.0 if fault == "no_change" else 25.0
    target = _turn((x, y), (end_x, end_y), turned, width, height)
    behind = next((n for n in sorted(NEIGHBOURS.get(anchor or "", ())) if n in points and n != toward), None)
    if turned and behind and _closes_less(target, _turn((x, y), (end_x, end_y), -turned, width, height),
                                          (x, y), points[behind], width, height):  # fmt: skip
        target = _turn((x, y), (end_x, end_y), -turned, width, height)
    return CoachingLabel.model_validate(
        {
            "status": "success",
            "positive_note": "Steady base and a calm upper body.",
            "progress_score": 70,
            "feedback_points": [
                {
                    "severity": "intermediate",
                    "coaching_script": words,
                    "visuals": {
                        "overlay_type": "ANGLE_CORRECTION",
                        "focus_point": {"x": x, "y": y},
                        "vectors": [
                            {"start": [x, y], "end": [end_x, end_y], "color": "red", "label": "Current"},
                            {"start": [x, y], "end": list(target), "color": "green", "label": "Target"},
                        ],
                    },
                }
            ],
        }
    )


def _turn(start, end, degrees: float, width: int, height: int) -> tuple[float, float]:
    """end turned about start by degrees in pixel space, normalized and kept in the image."""
    dx, dy = (end[0] - start[0]) * width, (end[1] - start[1]) * height
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    tx, ty = dx * cos - dy * sin, dx * sin + dy * cos
    for scale in (1.0, 0.75, 0.5, 0.25):
        point = (start[0] + tx * scale / width, start[1] + ty * scale / height)
        if 0 <= point[0] <= 1 and 0 <= point[1] <= 1:
            return point
    return _clip(start[0] + tx * 0.1 / width), _clip(start[1] + ty * 0.1 / height)


def _closes_less(one, other, vertex, neighbour, width: int, height: int) -> bool:
    """Whether Target `one` leaves a wider angle with the vertex's other neighbour than Target `other`."""

    def angle(end) -> float:
        u = ((end[0] - vertex[0]) * width, (end[1] - vertex[1]) * height)
        v = ((neighbour[0] - vertex[0]) * width, (neighbour[1] - vertex[1]) * height)
        cos = (u[0] * v[0] + u[1] * v[1]) / ((math.hypot(*u) * math.hypot(*v)) or 1.0)
        return math.degrees(math.acos(max(-1.0, min(1.0, cos))))

    return angle(one) > angle(other)


def _preference(name: str) -> int:
    joint = name.partition("_")[2]
    return _JOINT_PREFERENCE.index(joint) if joint in _JOINT_PREFERENCE else len(_JOINT_PREFERENCE)


def _far_from(points) -> tuple[float, float]:
    """The grid point farthest from all given points."""
    points = list(points)
    grid = [(i / 10, j / 10) for i in range(11) for j in range(11)]
    return max(grid, key=lambda g: min((abs(g[0] - p[0]) + abs(g[1] - p[1]) for p in points), default=1.0))


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 512  # the listen backlog: 64+ clients connect at once
    allow_reuse_address = True
    fake: FakeTeacherServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs expect
    # Headers and body go out in separate writes; without TCP_NODELAY the client's delayed ACK
    # adds ~40 ms to every answer, which a latency benchmark would wrongly charge to the client.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with fake._lock:
            fake.http_requests += 1
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            reply = fake.route(method, self.path, self.headers, body)
        except Exception as exc:  # a bug in the fake or a request it cannot read: fail loudly, not retryably
            fake.errors.append(repr(exc))
            reply = Reply(
                400, {"error": {"code": 400, "message": f"fake server: {exc!r}", "status": "INVALID_ARGUMENT"}}
            )
        finally:
            with fake._lock:
                fake.in_flight -= 1
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            if "Content-Type" not in reply.headers:
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout): nothing to answer

    def log_message(self, format: str, *args) -> None:
        pass  # quiet tests
