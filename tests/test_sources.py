"""Sources: the offline samples, folders laid out by activity, Kaggle behind its interface."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from motioncoach.config import SourceConfig
from motioncoach.errors import ConfigurationError, SourceError
from motioncoach.hashing import file_sha256
from motioncoach.records import ImageRecord
from motioncoach.sources import collect_images
from motioncoach.sources.folder import scan_folder
from motioncoach.sources.kaggle import KaggleApiDownloader, download_datasets
from motioncoach.sources.sampling import drop_skipped, spread_evenly


def test_samples_hold_the_named_photos(tmp_path):
    records = collect_images(SourceConfig(source="samples"), tmp_path)
    names = {r.path.stem for r in records}
    assert {"astronaut", "grace_hopper", "bus", "zidane", "coffee", "chelsea"} <= names
    assert all(r.sha256 == file_sha256(r.path) for r in records)
    again = collect_images(SourceConfig(source="samples"), tmp_path)
    assert again == records


def test_folder_activity_comes_from_the_enclosing_folder(tmp_path):
    (tmp_path / "Push_Up").mkdir()
    (tmp_path / "Push_Up" / "a.jpg").write_bytes(b"a")
    (tmp_path / "yoga" / "tree").mkdir(parents=True)
    (tmp_path / "yoga" / "tree" / "b.png").write_bytes(b"b")
    (tmp_path / "yoga" / ".hidden.jpg").write_bytes(b"c")
    records = scan_folder(tmp_path)
    assert [(r.path.name, r.activity) for r in records] == [("a.jpg", "push up"), ("b.png", "tree")]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no such folder"):
        scan_folder(tmp_path / "nope")


def _records(counts: dict[str, int]) -> list[ImageRecord]:
    return [
        ImageRecord(path=Path(f"/d/{a}/{i:04d}.jpg"), activity=a, sha256=f"{a}{i}")
        for a, n in counts.items()
        for i in range(n)
    ]


def test_budget_is_spread_evenly_and_small_activities_give_way():
    chosen = spread_evenly(_records({"yoga": 100, "squat": 100, "chess": 3, "tennis": 40}), 100)
    counts = Counter(r.activity for r in chosen)
    assert counts == {"chess": 3, "tennis": 33, "yoga": 32, "squat": 32}
    assert chosen == sorted(chosen, key=lambda r: str(r.path))
    assert spread_evenly(_records({"yoga": 5}), 100) == _records({"yoga": 5})


def test_skipped_activities_are_dropped_case_insensitively():
    kept = drop_skipped(_records({"chess": 2, "ice hockey": 2, "yoga": 2}), ("Chess", "ice_hockey"))
    assert {r.activity for r in kept} == {"yoga"}


class FolderDownloader:
    """Stands in for Kaggle: copies a prepared zip's content, counting calls."""

    def __init__(self, fail_first: bool = False):
        self.calls: list[str] = []
        self.fail_first = fail_first

    def download(self, slug: str, dest: Path) -> None:
        self.calls.append(slug)
        if self.fail_first and len(self.calls) == 1:
            (dest / "half.jpg").write_bytes(b"partial")
            raise ConnectionError("connection reset")
        (dest / "train" / "yoga").mkdir(parents=True)
        (dest / "train" / "yoga" / f"{slug.split('/')[1]}.jpg").write_bytes(slug.encode())


def test_kaggle_downloads_are_idempotent_and_interrupted_ones_redone(tmp_path):
    slugs = ("owner/one", "owner/two")
    downloader = FolderDownloader(fail_first=True)
    with pytest.raises(SourceError, match="owner/one could not be downloaded: connection reset"):
        download_datasets(slugs, tmp_path, downloader)
    folders = download_datasets(slugs, tmp_path, downloader)
    assert [f.name for f in folders] == ["owner__one", "owner__two"]
    assert not (folders[0] / "half.jpg").exists()
    download_datasets(slugs, tmp_path, downloader)
    assert downloader.calls == ["owner/one", "owner/one", "owner/two"]


def test_kaggle_source_lists_every_downloaded_image(tmp_path):
    config = SourceConfig(source="kaggle", kaggle_datasets=("owner/one", "owner/two"))
    records = collect_images(config, tmp_path, FolderDownloader())
    assert [(r.path.name, r.activity) for r in records] == [("one.jpg", "yoga"), ("two.jpg", "yoga")]


def test_kaggle_without_credentials_names_the_variables(monkeypatch, tmp_path):
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigurationError, match="KAGGLE_API_TOKEN.*KAGGLE_USERNAME and KAGGLE_KEY"):
        KaggleApiDownloader()
