"""A folder of photos sorted by verdict (`correct/` and `incorrect/`, as Kaggle form datasets are) as a benchmark.

Every folder named like `--form-ok-folder` holds photos of correct form; its sibling folders hold photos
of faulty form. The activity is the name of the folder above them (`squat/correct/...` is a squat), or
the one given. Photos are copied by content into the suite's own folder, so the source stays untouched.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from motioncoach.benchmarks.suite import BenchmarkItem, Suite, SuiteInfo, write_suite
from motioncoach.errors import ConfigurationError
from motioncoach.hashing import file_sha256

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _readable(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (OSError, UnidentifiedImageError):
        return False
    except ModuleNotFoundError:  # ultralytics' patch of Image.open asks for a HEIF plugin on what it cannot read
        return False


def suite_from_verdict_folders(
    root: Path, form_ok_folder: str, out: Path, *, activity: str | None = None, source: str | None = None
) -> Suite:
    """Build the benchmark folder `out` from `root`'s verdict folders (see the module docstring)."""
    root = Path(root).expanduser().resolve()
    wanted = form_ok_folder.strip().lower()
    correct = sorted(p for p in [root, *root.rglob("*")] if p.is_dir() and p.name.lower() == wanted)
    if not correct:
        raise ConfigurationError(
            f"--form-ok-folder {form_ok_folder}: no folder of that name under {root} (its sub-folders: "
            f"{', '.join(sorted(p.name for p in root.iterdir() if p.is_dir())) or 'none'})"
        )
    images = Path(out) / "images"
    images.mkdir(parents=True, exist_ok=True)
    items, unreadable = [], 0
    for ok_folder in correct:
        group = ok_folder.parent
        name = activity or (group.name if group != root or not activity else activity)
        for verdict_folder in sorted(p for p in group.iterdir() if p.is_dir()):
            form_ok = verdict_folder == ok_folder
            for photo in _photos(verdict_folder):
                if not _readable(photo):
                    unreadable += 1
                    continue
                sha = file_sha256(photo)
                target = images / f"{sha}{photo.suffix.lower()}"
                if not target.exists():
                    _link_or_copy(photo, target)
                items.append(
                    BenchmarkItem(
                        id=sha[:16],
                        image=f"images/{target.name}",
                        activity=name,
                        source=source or root.name,
                        form_ok=form_ok,
                        comment=f"{verdict_folder.name}/{photo.relative_to(verdict_folder)}",
                    )
                )
    unique = list({item.id: item for item in items}.values())  # the same photo twice is one item
    if not any(i.form_ok is False for i in unique):
        raise ConfigurationError(
            f"{root}: no photos beside the {form_ok_folder!r} folders, so no faulty form to find: each "
            f"{form_ok_folder!r} folder needs sibling folders (e.g. incorrect/) holding the faulty photos"
        )
    notes = f"{len(unique)} photos from the verdict folders of {root.name}" + (
        f"; {unreadable} files that are no readable image left out" if unreadable else ""
    )
    info = SuiteInfo(name=Path(out).name, source=source or root.name, license="as the source folder's", notes=notes)
    return write_suite(Path(out), unique, info)


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)
