"""The offline sample set: real photos that installed packages ship, laid out like a Kaggle dataset."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

# (activity folder, file name, how to get the photo). The names keep the photos' own names so a
# reader can tell which is which: astronaut, cameraman and grace_hopper show one person, bus and zidane
# several, coffee and chelsea (a cat) nobody.
Photo = Callable[[], "np.ndarray | Path"]


def _skimage(name: str) -> Photo:
    def load():
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _matplotlib(name: str) -> Photo:
    def load():
        from matplotlib import cbook

        return Path(cbook.get_sample_data(name, asfileobj=False))

    return load


def _ultralytics(name: str) -> Photo:
    def load():
        import importlib.util

        spec = importlib.util.find_spec("ultralytics")
        return Path(spec.submodule_search_locations[0]) / "assets" / name

    return load


SAMPLE_PHOTOS: tuple[tuple[str, str, Photo], ...] = (
    ("standing", "astronaut.png", _skimage("astronaut")),
    ("photography", "cameraman.png", _skimage("camera")),
    ("seated", "grace_hopper.jpg", _matplotlib("grace_hopper.jpg")),
    ("walking", "bus.jpg", _ultralytics("bus.jpg")),
    ("football", "zidane.jpg", _ultralytics("zidane.jpg")),
    ("still life", "coffee.png", _skimage("coffee")),
    ("still life", "chelsea.png", _skimage("chelsea")),
)
# Debian's darknet package ships one more single-person photo; used when installed.
DARKNET_PERSON = Path("/usr/share/darknet/data/person.jpg")


def assemble_samples(dest: Path) -> Path:
    """Write the sample photos under dest/<activity>/, once; returns dest."""
    dest = Path(dest)
    photos = list(SAMPLE_PHOTOS)
    if DARKNET_PERSON.is_file():
        photos.append(("outdoors", "person.jpg", lambda: DARKNET_PERSON))
    for activity, name, load in photos:
        target = dest / activity / name
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{name}.partial")
        photo = load()
        if isinstance(photo, Path):
            shutil.copyfile(photo, partial)
        else:
            from PIL import Image

            Image.fromarray(photo).convert("RGB").save(partial, format="PNG")  # the cameraman is grey
        partial.replace(target)
    return dest
