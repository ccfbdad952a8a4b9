"""modal.Dict for the rehearsal: a JSON file on the rehearsal volume's private side, changed under a lock, so
put(skip_if_exists=True) is atomic across the client and every call's processes, as Modal's is server-side."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DICTS_DIR = ".rehearsal/dicts"
_MISSING = object()


class RehearsalDict:
    """The put, get, pop and contains of a named modal.Dict; keys are strings, values JSON."""

    def __init__(self, root: Path, name: str):
        self.path = Path(root) / DICTS_DIR / f"{name}.json"

    @contextmanager
    def _entries(self, write: bool) -> Iterator[dict]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                entries = json.loads(self.path.read_text()) if self.path.exists() else {}
            except ValueError:
                entries = {}
            yield entries
            if write:
                partial = self.path.with_suffix(".partial")
                partial.write_text(json.dumps(entries, indent=1))
                partial.replace(self.path)

    def put(self, key: str, value: Any, *, skip_if_exists: bool = False) -> bool:
        """Set key to value; with skip_if_exists, only when key is absent. Whether the value was set."""
        with self._entries(write=True) as entries:
            if skip_if_exists and key in entries:
                return False
            entries[key] = value
            return True

    def get(self, key: str, default: Any = None) -> Any:
        with self._entries(write=False) as entries:
            return entries.get(key, default)

    def contains(self, key: str) -> bool:
        with self._entries(write=False) as entries:
            return key in entries

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        with self._entries(write=True) as entries:
            if key in entries:
                return entries.pop(key)
        if default is _MISSING:
            raise KeyError(f"{key} not in dict {self.path.stem}")
        return default
