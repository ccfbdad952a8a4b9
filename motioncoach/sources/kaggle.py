"""Kaggle datasets, downloaded and unzipped once, behind a small interface tests can stand in for."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Protocol

from motioncoach.errors import ConfigurationError, SourceError

log = logging.getLogger(__name__)

_DONE = ".download-complete"
CREDENTIALS_HELP = (
    "Kaggle credentials are missing: set KAGGLE_API_TOKEN (create a token at "
    "https://www.kaggle.com/settings/api), or KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json "
    "in ~/.kaggle/. Or choose --source samples or --source <folder>."
)


class DatasetDownloader(Protocol):
    """Downloads one dataset's files, unzipped, into a folder."""

    def download(self, slug: str, dest: Path) -> None: ...


def kaggle_credentials_present() -> bool:
    """Whether any of the ways the Kaggle client authenticates is configured."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return True
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    return any((config_dir / name).is_file() for name in ("kaggle.json", "access_token", "access_token.txt"))


class KaggleApiDownloader:
    """The real Kaggle API. Imported lazily: a bare `import kaggle` authenticates at import time."""

    def __init__(self) -> None:
        if not kaggle_credentials_present():
            raise ConfigurationError(CREDENTIALS_HELP)
        from kaggle.api.kaggle_api_extended import KaggleApi

        self._api = KaggleApi()
        try:
            self._api.authenticate()
        except SystemExit as exc:  # the client exits instead of raising on bad credentials
            raise ConfigurationError(CREDENTIALS_HELP) from exc

    def download(self, slug: str, dest: Path) -> None:
        self._api.dataset_download_files(slug, path=str(dest), unzip=True, quiet=False)


def dataset_folder(root: Path, slug: str) -> Path:
    owner, _, name = slug.partition("/")
    if not owner or not name:
        raise ConfigurationError(f"Kaggle dataset '{slug}' is not of the form owner/name.")
    return Path(root) / f"{owner}__{name}"


def download_datasets(slugs: tuple[str, ...], root: Path, downloader: DatasetDownloader) -> list[Path]:
    """Each dataset unzipped under root/<owner>__<name>/, skipping those already complete.

    A download is written to a temporary folder and renamed when whole, so an interrupted one is
    redone rather than half-used.
    """
    folders = []
    for slug in slugs:
        folder = dataset_folder(root, slug)
        if (folder / _DONE).is_file():
            log.info("Kaggle dataset %s already downloaded", slug)
            folders.append(folder)
            continue
        partial = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        log.info("Downloading Kaggle dataset %s", slug)
        try:
            downloader.download(slug, partial)
        except ConfigurationError:
            raise
        except Exception as exc:
            raise SourceError(f"Kaggle dataset {slug} could not be downloaded: {exc}") from exc
        (partial / _DONE).write_text(slug)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
        folders.append(folder)
    return folders
