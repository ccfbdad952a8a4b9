"""The YOLO cache, `<data-dir>/yolo_cache.json`: one outcome per image content and decisive settings."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

CACHE_VERSION = 1
CACHE_FILE_NAME = "yolo_cache.json"

log = logging.getLogger(__name__)


class CacheEntry(BaseModel):
    """What the pose filter decided for one image content under one fingerprint."""

    model_config = ConfigDict(extra="forbid")

    sha256: str
    source_path: str
    duplicates: list[str] = []
    activity: str
    outcome: Literal["kept", "rejected"]
    reason: str | None = None
    persons: int | None = None
    width: int | None = None
    height: int | None = None
    box_conf: float | None = None
    keypoints: list[tuple[str, float, float, float]] | None = None
    weights: str
    created_at: str = ""

    def model_post_init(self, _context: object) -> None:
        if not self.created_at:
            self.created_at = datetime.now(UTC).isoformat(timespec="seconds")

    def paths(self) -> list[str]:
        """Every path seen with this content, the first one first."""
        return [self.source_path, *self.duplicates]

    def add_path(self, path: str) -> bool:
        """Remember another path with the same content; True when it was new."""
        if path in self.paths():
            return False
        self.duplicates.append(path)
        return True


class _CacheFile(BaseModel):
    version: Literal[1]
    entries: dict[str, CacheEntry]


def cache_key(sha256: str, fingerprint: str) -> str:
    """The entry key: content hash, then PoseFilterConfig.cache_fingerprint()."""
    return f"{sha256}:{fingerprint}"


class PoseCache:
    """The cache file in memory; save() replaces the file atomically."""

    def __init__(self, path: Path, entries: dict[str, CacheEntry] | None = None) -> None:
        self.path = path
        self.entries = entries or {}
        # Each entry's JSON, kept between saves: a save per batch must not re-encode thousands of entries.
        self._encoded: dict[str, str] = {}
        self._dirty = False

    @classmethod
    def load(cls, path: Path) -> PoseCache:
        """Read the cache; a missing file is empty, a corrupt one is moved aside and treated as empty."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except (OSError, UnicodeDecodeError) as exc:
            return cls(path, _move_aside(path, f"unreadable ({exc})"))
        try:
            return cls(path, _CacheFile.model_validate_json(text).entries)
        except ValidationError as exc:
            first = exc.errors()[0]["msg"]
            return cls(path, _move_aside(path, f"corrupt ({exc.error_count()} errors, first: {first})"))

    def lookup(self, sha256: str, fingerprint: str) -> CacheEntry | None:
        """The entry for this content under these settings, if any."""
        return self.entries.get(cache_key(sha256, fingerprint))

    def record(self, fingerprint: str, entry: CacheEntry) -> None:
        """Add an entry, or store one changed in place; written by the next save()."""
        key = cache_key(entry.sha256, fingerprint)
        self.entries[key] = entry
        self._encoded.pop(key, None)
        self._dirty = True

    def save(self) -> None:
        """Write the file if anything changed: temp file, fsync, os.replace, so a crash never corrupts it."""
        if not self._dirty:
            return
        for key in self.entries.keys() - self._encoded.keys():
            self._encoded[key] = self.entries[key].model_dump_json()
        entries = ",".join(f"{json.dumps(key)}:{self._encoded[key]}" for key in self.entries)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(f'{{"version":{CACHE_VERSION},"entries":{{{entries}}}}}')
                file.flush()
                os.fsync(file.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is plain data
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty = False


def _move_aside(path: Path, why: str) -> dict[str, CacheEntry]:
    """Keep a bad cache file for inspection, and start over with no entries."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.replace(path, aside)
    except OSError as exc:
        log.warning("YOLO cache %s is %s and could not be moved aside (%s); starting empty", path, why, exc)
    else:
        log.warning("YOLO cache %s is %s; moved it to %s and starting empty", path, why, aside.name)
    return {}
