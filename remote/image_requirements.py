"""Requirement files for the Modal images, every package pinned to its version in uv.lock.

Each image names a few top-level packages; what they pull in (trl, modelscope, ... under
ms-swift) is followed through the lock for Modal's platform (Linux x86-64, the image's Python),
so an image installs exactly what the tests ran against. Regenerate after `uv lock`:

    uv run python -m remote.image_requirements
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "uv.lock"
REQUIREMENTS_DIR = Path(__file__).resolve().parent / "requirements"
PYTHON_VERSION = "3.11"
# The platform Modal's debian_slim images run on.
ENVIRONMENT = {
    "python_version": PYTHON_VERSION,
    "python_full_version": f"{PYTHON_VERSION}.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}

CORE = ["pydantic", "numpy", "pillow", "packaging", "matplotlib"]  # what motioncoach itself imports
IMAGES = {
    "cpu": [
        *CORE,
        *["scikit-image", "kaggle", "google-genai", "openai", "huggingface-hub", "hf-xet"],
        *["pydantic-settings", "jinja2", "pyyaml"],  # the release: Hub settings, cards
    ],
    "pose": [*CORE, "torch", "torchvision", "ultralytics", "opencv-python"],
    "train": [
        *CORE,
        *["torch", "torchvision", "ms-swift", "transformers", "peft", "accelerate", "datasets"],
        *["qwen-vl-utils", "av", "huggingface-hub", "hf-xet"],
        "deepspeed",  # ZeRO-2, chosen by TrainConfig.deepspeed="auto" when plain DDP would leave too little memory
    ],
}


def _applies(entry: dict) -> bool:
    marker = entry.get("marker")
    return marker is None or Marker(marker).evaluate(ENVIRONMENT | {"extra": ""})


def _package_applies(package: dict) -> bool:
    """A package version locked for some platforms only: does it serve Modal's?"""
    markers = package.get("resolution-markers")
    return not markers or any(Marker(m).evaluate(ENVIRONMENT | {"extra": ""}) for m in markers)


def locked_packages(lock: Path = LOCK) -> dict[str, dict]:
    """name -> the lock's package entry that Modal's platform resolves to."""
    found: dict[str, dict] = {}
    for package in tomllib.loads(lock.read_text())["package"]:
        if package.get("source", {}).get("editable") or package.get("source", {}).get("virtual"):
            continue
        name = canonicalize_name(package["name"])
        if name not in found or _package_applies(package):
            found[name] = package
    return found


def closure(roots: list[str], packages: dict[str, dict]) -> dict[str, str]:
    """name -> version of the roots and everything they need on Modal's platform."""
    pinned: dict[str, str] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(canonicalize_name(r), ()) for r in roots]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in packages:
            raise KeyError(f"{name} is not in uv.lock: add it to pyproject.toml (a group will do) and run `uv lock`")
        package = packages[name]
        pinned[name] = package["version"]
        dependencies = list(package.get("dependencies", []))
        for extra in extras:
            dependencies += package.get("optional-dependencies", {}).get(extra, [])
        for dependency in dependencies:
            if not _applies(dependency):
                continue
            version = dependency.get("version")
            if version and canonicalize_name(dependency["name"]) in packages:
                chosen = packages[canonicalize_name(dependency["name"])]
                if chosen["version"] != version:
                    continue  # the other platform's fork of this dependency
            todo.append((canonicalize_name(dependency["name"]), tuple(dependency.get("extra", []))))
    return pinned


def requirements_text(image: str, lock: Path = LOCK) -> str:
    pins = closure(IMAGES[image], locked_packages(lock))
    header = f"# The {image} image: generated from uv.lock by `python -m remote.image_requirements`.\n"
    return header + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def requirements_file(image: str) -> str:
    """Path of an image's requirement file, for modal.Image.uv_pip_install(requirements=[...])."""
    return str(REQUIREMENTS_DIR / f"{image}.txt")


def pinned_versions(image: str) -> dict[str, str]:
    """name -> version as the committed requirement file pins it."""
    text = Path(requirements_file(image)).read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, flags=re.MULTILINE))


def main() -> None:
    REQUIREMENTS_DIR.mkdir(exist_ok=True)
    for image in IMAGES:
        Path(requirements_file(image)).write_text(requirements_text(image))
        print(f"{requirements_file(image)}: {len(pinned_versions(image))} packages", file=sys.stderr)


if __name__ == "__main__":
    main()
