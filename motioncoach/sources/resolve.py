"""From the --source value to the list of images to use."""

from __future__ import annotations

from pathlib import Path

from motioncoach.config import SourceConfig
from motioncoach.records import ImageRecord
from motioncoach.sources.folder import scan_folder
from motioncoach.sources.kaggle import DatasetDownloader, KaggleApiDownloader, download_datasets
from motioncoach.sources.samples import assemble_samples
from motioncoach.sources.sampling import drop_skipped, spread_evenly


def source_kind(source: str) -> str:
    """'samples', 'kaggle' or 'folder'."""
    return source if source in ("samples", "kaggle") else "folder"


def collect_images(
    config: SourceConfig, data_dir: Path, downloader: DatasetDownloader | None = None
) -> list[ImageRecord]:
    """Materialize the source under data_dir where needed, then choose the images to use."""
    raw = Path(data_dir) / "raw"
    kind = source_kind(config.source)
    if kind == "samples":
        records = scan_folder(assemble_samples(raw / "samples"))
    elif kind == "kaggle":
        folders = download_datasets(config.kaggle_datasets, raw / "kaggle", downloader or KaggleApiDownloader())
        records = [record for folder in folders for record in scan_folder(folder)]
    else:
        records = scan_folder(Path(config.source))
    return spread_evenly(drop_skipped(records, config.skip_activities), config.max_samples)
