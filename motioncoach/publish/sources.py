"""Where the dataset's photos came from, and under which terms, for the lineage record and the cards.

Only what is known offline is stated: the sample photos' terms as their packages document them;
for Kaggle datasets and user folders, where to look.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pydantic import BaseModel

# The offline sample photos (motioncoach.sources.samples), by file name.
SAMPLE_TERMS: dict[str, tuple[str, str]] = {
    "astronaut.png": (
        "Public domain (NASA photo of Eileen Collins), as documented by scikit-image",
        "https://scikit-image.org/docs/stable/api/skimage.data.html#skimage.data.astronaut",
    ),
    "grace_hopper.jpg": (
        "Public domain (official U.S. Navy photograph of Grace Hopper), shipped in matplotlib's sample data",
        "https://matplotlib.org/stable/api/cbook_api.html#matplotlib.cbook.get_sample_data",
    ),
    "bus.jpg": ("Shipped in the ultralytics package (AGPL-3.0)", "https://github.com/ultralytics/ultralytics"),
    "zidane.jpg": ("Shipped in the ultralytics package (AGPL-3.0)", "https://github.com/ultralytics/ultralytics"),
    "coffee.png": (
        "CC0 (photographer Rachel Michetti), as documented by scikit-image",
        "https://scikit-image.org/docs/stable/api/skimage.data.html#skimage.data.coffee",
    ),
    "chelsea.png": (
        "CC0 (photographer Stefan van der Walt), as documented by scikit-image",
        "https://scikit-image.org/docs/stable/api/skimage.data.html#skimage.data.chelsea",
    ),
    "person.jpg": (
        "Shipped in Debian's darknet package (see its copyright file)",
        "https://packages.debian.org/darknet",
    ),
}


class SourceSummary(BaseModel):
    """One source of dataset images: what it is, how many of the rows it gave, and its terms."""

    kind: str  # samples | kaggle | folder
    name: str
    images: int
    license: str
    url: str | None = None


def summarize_sources(source_paths: list[Path], data_dir: Path) -> list[SourceSummary]:
    """Group the dataset images' source paths by where they came from."""
    raw = Path(data_dir).resolve() / "raw"
    counts: Counter[tuple[str, str]] = Counter()
    for path in source_paths:
        counts[_origin(Path(path), raw)] += 1
    summaries = []
    for (kind, name), images in sorted(counts.items()):
        license, url = _terms(kind, name)
        summaries.append(SourceSummary(kind=kind, name=name, images=images, license=license, url=url))
    return summaries


def _origin(path: Path, raw: Path) -> tuple[str, str]:
    try:
        relative = _under_raw(path, raw)
    except ValueError:
        # A user folder laid out <root>/<activity>/<file>: name it by its root folder, not its full path.
        return "folder", path.parent.parent.name or str(path.parent)
    parts = relative.parts
    if parts[0] == "samples":
        return "samples", path.name
    if parts[0] == "kaggle" and len(parts) > 1:
        return "kaggle", parts[1].replace("__", "/", 1)
    if parts[0] == "uploads" and len(parts) > 1:  # a --source folder the modal profile uploaded
        return "folder", parts[1]
    return "folder", parts[0]


def _under_raw(path: Path, raw: Path) -> Path:
    """path relative to the data dir's raw/, here or where the same data dir lives on the Modal volume
    (/data/<name>/raw/...), whose paths the client only names."""
    try:
        return path.resolve().relative_to(raw)
    except ValueError:
        parts = path.parts
        for i in range(1, len(parts) - 1):
            if parts[i] == "raw" and parts[i - 1] == raw.parent.name:
                return Path(*parts[i + 1 :])
        raise


def _terms(kind: str, name: str) -> tuple[str, str | None]:
    if kind == "samples":
        return SAMPLE_TERMS.get(name, ("Unknown: a sample photo this version does not describe", None))
    if kind == "kaggle":
        url = f"https://www.kaggle.com/datasets/{name}"
        return f"As stated on the Kaggle dataset page (not recorded offline): {url}", url
    return "Unknown: a local folder; its owner must state the terms before publishing", None
