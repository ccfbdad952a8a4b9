"""`--suite NAME|PATH`: a benchmark folder, a folder of photos sorted by verdict, or a suite known by name."""

from __future__ import annotations

import shutil
from pathlib import Path

from motioncoach.benchmarks.suite import SUITE_FILE, Suite, load_suite
from motioncoach.errors import ConfigurationError

BENCHMARKS_DIR = "benchmarks"  # in the data dir: suites built from a source (a Hub repo, verdict folders)
KNOWN_SUITES = ("exact",)


def resolve_suite(ref: str, data_dir: Path, *, form_ok_folder: str | None = None, activity: str | None = None) -> Suite:
    """The suite `ref` names, built once into <data-dir>/benchmarks/<name>/ when it comes from elsewhere."""
    path = Path(ref).expanduser()
    built = Path(data_dir) / BENCHMARKS_DIR
    if path.is_dir():
        if form_ok_folder:
            from motioncoach.benchmarks.verdict_folders import suite_from_verdict_folders

            return suite_from_verdict_folders(path, form_ok_folder, built / path.resolve().name, activity=activity)
        return load_suite(path)
    name = ref.strip().lower()
    if name == "exact":
        folder = built / name
        if (folder / SUITE_FILE).is_file():
            return load_suite(folder)
        from motioncoach.benchmarks.exact import exact_from_hub

        suite = exact_from_hub(folder)
        shutil.rmtree(folder / ".hub-cache", ignore_errors=True)  # the clips: their frames are what is kept
        return suite
    raise ConfigurationError(
        f"--suite {ref}: no such folder, and not a suite known by name ({', '.join(KNOWN_SUITES)}). A suite is a "
        f"folder with {SUITE_FILE} and its images, or a folder of photos sorted by verdict (with --form-ok-folder)."
    )
