"""Content hashes: the identity of images, datasets and anything else we cache on."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tree_sha256(root: Path, parts: tuple[str, ...]) -> str:
    """A short hash of the files under these paths (relative to root), by path and content; caches and
    compiled files left out."""
    digest = hashlib.sha256()
    for part in parts:
        target = Path(root) / part
        files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        for path in files:
            if path.suffix == ".pyc" or "__pycache__" in path.parts or not path.exists():
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
