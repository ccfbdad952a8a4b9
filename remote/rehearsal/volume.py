"""The rehearsal's volume: a directory holding what has been committed, the client's API over it, and
each call's private mount of it.

A call's mount is a copy of the directory as of the call's start (large files are hard links; they
are replaced, never written in place, by anything the app does). JSON files name volume paths as on
Modal (/data/...) on the directory, and as the call's own mount inside it. Its writes reach the directory only
at commit(): every file changed or added since the mount was taken or last synced is copied over
(the last commit of a file wins, as on Modal), and every file it deleted is deleted; what other calls
committed stays out until reload(). reload() fails while a process of the container holds a file of the
mount open, as Modal's does ("there are open files preventing the operation"), and so does the reload
that Modal's commit() makes after committing; otherwise it commits what is pending, as Modal's may, then
brings in what other calls committed. The attempt also commits in the background and when its
container exits, as Modal does.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from remote.rehearsal import faults
from remote.rehearsal.processes import descendants

PRIVATE = ".rehearsal"  # the rehearsal's own records inside the directory: never part of the volume
LINK_AT_BYTES = 8 << 20  # files this large are hard-linked into a mount instead of copied
VOLUME_PATH = "/data"  # where the functions mount the volume on Modal
# Files that name volume paths (caches, records, configs): on the directory they read /data/..., as on
# Modal, and in a call's mount that mount's own path, so a path one call writes opens in the next.
PATH_FILES = (".json", ".jsonl")
MOUNT_ENV = "MOTIONCOACH_REHEARSAL_MOUNT"  # the attempt's mount,
ROOT_ENV = "MOTIONCOACH_REHEARSAL_ROOT"  # the directory it syncs with, for mounted_volume(),
FUNCTION_ENV = "MOTIONCOACH_REHEARSAL_FUNCTION"  # and the function it runs
TRAINING = ("train", "train_smoke")

Manifest = dict[str, tuple[int, int, int]]  # relative path -> (inode, size, mtime_ns)


def _files(base: Path) -> Manifest:
    found: Manifest = {}
    for directory, names, files in os.walk(base):
        here = Path(directory)
        if here == base and PRIVATE in names:
            names.remove(PRIVATE)
        for name in files:
            path = here / name
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found[path.relative_to(base).as_posix()] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return found


def _place(source: Path, target: Path, link: bool, paths: tuple[str, str]) -> None:
    """Put source's bytes at target atomically: JSON with the volume's paths rewritten from paths[0] to
    paths[1], a hard link for any other large file when link is set, a copy otherwise."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.rehearsal-partial")
    partial.unlink(missing_ok=True)
    try:
        _write_partial(source, partial, link, paths)
    except BaseException:
        partial.unlink(missing_ok=True)  # the source went while it was copied: nothing half-made stays
        raise
    partial.replace(target)


def _write_partial(source: Path, partial: Path, link: bool, paths: tuple[str, str]) -> None:
    if source.suffix in PATH_FILES:
        old, new = paths
        text = source.read_bytes()
        for quote in ('"', "'"):  # JSON strings, and the Python reprs some tools write into them
            text = text.replace(f"{quote}{old}/".encode(), f"{quote}{new}/".encode())
            text = text.replace(f"{quote}{old}{quote}".encode(), f"{quote}{new}{quote}".encode())
        partial.write_bytes(text)
        shutil.copystat(source, partial)
    elif link and source.stat().st_size >= LINK_AT_BYTES:
        os.link(source, partial)
    else:
        shutil.copy2(source, partial)


@contextmanager
def _committing(root: Path) -> Iterator[None]:
    """One commit at a time on the directory."""
    lock = Path(root) / PRIVATE / "commit.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class MountedVolume:
    """A call's private mount of the volume: commit() and reload() as modal.Volume offers them in a container."""

    def __init__(self, root: Path, mount: Path, function: str = ""):
        self.root, self.mount, self.function = Path(root), Path(mount), function
        self.mine: Manifest = {}  # the mount as last synced with the directory
        self.theirs: Manifest = {}  # the directory as last synced
        self._lock = threading.Lock()  # the app's commits and the background ones, one at a time

    @classmethod
    def take(cls, root: Path, mount: Path, function: str = "") -> MountedVolume:
        """A new mount holding the directory's committed state."""
        volume = cls(root, mount, function)
        Path(mount).mkdir(parents=True, exist_ok=True)
        with _committing(root):
            volume._bring_in(_files(volume.root))
        return volume

    def commit(self) -> None:
        """Publish this call's writes, then (as Modal's commit does) reload: which fails with files open."""
        if self.function in TRAINING and faults.fire(self.root, "commit-fail@train"):
            raise RuntimeError("rehearsed fault commit-fail@train: the volume commit failed")
        self._publish()
        self._fire_preemption()
        self._refuse_open_files()

    def reload(self) -> None:
        """Commit what is pending, then bring in what other calls committed; refused while files are open."""
        self._refuse_open_files()
        with self._lock, _committing(self.root):
            self._publish_locked()
            self._bring_in(_files(self.root))

    def background_commit(self) -> None:
        """What Modal's background commits do: publish, quietly; nothing to reload."""
        self._publish()

    def _publish(self) -> None:
        with self._lock, _committing(self.root):
            self._publish_locked()

    def _refuse_open_files(self) -> None:
        open_here = open_files_under(self.mount)
        if open_here:
            raise RuntimeError(
                "there are open files preventing the operation: "
                f"{open_here[0].relative_to(self.mount).as_posix()} is open"
            )

    def _publish_locked(self) -> None:
        """Copy what this call changed or deleted since the last sync onto the directory (commit lock held)."""
        now = _files(self.mount)  # one snapshot: what the app writes or deletes meanwhile waits for the next
        changed = [name for name, stat in now.items() if self.mine.get(name) != stat]
        deleted = set(self.mine) - set(now)
        for name in list(changed):
            try:
                _place(self.mount / name, self.root / name, link=False, paths=(str(self.mount), VOLUME_PATH))
            except FileNotFoundError:  # deleted since the snapshot: the next commit sees it gone
                changed.remove(name)
                del now[name]
                if name in self.mine:
                    now[name] = self.mine[name]
        for name in deleted:
            (self.root / name).unlink(missing_ok=True)
            _prune_empty_dirs(self.root, self.mount, PurePosixPath(name).parent)
        theirs = _files(self.root)
        for name in changed:  # what this call just wrote: the mount holds it already
            if name in theirs:
                self.theirs[name] = theirs[name]
        for name in deleted:
            self.theirs.pop(name, None)
        self.mine = now

    def _bring_in(self, theirs: Manifest) -> None:
        """Copy into the mount what the directory holds that differs from what this mount last saw of it.
        Only what it places or removes changes the mount's record: the app may be writing meanwhile."""
        for name, stat in theirs.items():
            if self.theirs.get(name) != stat:
                target = self.mount / name
                _place(self.root / name, target, link=True, paths=(VOLUME_PATH, str(self.mount)))
                placed = target.stat()
                self.mine[name] = (placed.st_ino, placed.st_size, placed.st_mtime_ns)
        for name in set(self.theirs) - set(theirs):
            (self.mount / name).unlink(missing_ok=True)
            self.mine.pop(name, None)
        self.theirs = theirs

    def _fire_preemption(self) -> None:
        """preempt@train:N: the container dies right after committing checkpoint N."""
        step = faults.armed(self.root, "preempt@train")
        if step is None or not any(self.root.glob(f"**/runs/*/checkpoint-{step}/trainer_state.json")):
            return
        if faults.fire_once(self.root, "preempt@train") is not None:
            (self.mount.parent / "preempted").touch()
            os.kill(os.getpid(), 9)  # the supervisor stops what this container started


def _prune_empty_dirs(root: Path, mount: Path, folder: PurePosixPath) -> None:
    """Remove the directories a commit emptied on the directory that the mount no longer has."""
    while folder.parts and not (mount / folder).exists():
        try:
            (root / folder).rmdir()
        except OSError:  # not empty (another call's files), or gone already
            return
        folder = folder.parent


def open_files_under(folder: Path) -> list[Path]:
    """Files below folder that this process or one it started holds open (what a container would hold)."""
    folder = Path(folder)
    found = []
    for pid in [os.getpid(), *descendants(os.getpid())]:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = Path(os.readlink(fd))
            except OSError:
                continue
            if target.is_relative_to(folder) and target.is_file():
                found.append(target)
    return found


_MOUNTED: MountedVolume | None = None


def mounted_volume() -> MountedVolume:
    """This attempt's mount (the process a rehearsed call runs in)."""
    global _MOUNTED
    if _MOUNTED is None:
        _MOUNTED = MountedVolume.take(
            Path(os.environ[ROOT_ENV]), Path(os.environ[MOUNT_ENV]), os.environ.get(FUNCTION_ENV, "")
        )
    return _MOUNTED


class RehearsalVolume:
    """modal.Volume's client API over the directory: read_file, listdir, batch_upload, remove_file.

    A client sees what calls committed; what it uploads is committed at once, as on Modal.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, path: str) -> Path:
        relative = PurePosixPath(path.strip("/"))
        if ".." in relative.parts or (relative.parts and relative.parts[0] == PRIVATE):
            raise ValueError(f"{path!r} is not a path on the volume")
        return self.root / relative

    def read_file(self, path: str) -> Iterator[bytes]:
        from modal.exception import InternalError

        if faults.fire(self.root, "error@volume-read"):
            raise InternalError(f"rehearsed fault: reading {path} from the volume failed")
        file = self._path(path)
        if not file.is_file():
            raise FileNotFoundError(f"No such file: {path}")  # what modal 1.6 raises
        return _chunks(file)

    def listdir(self, path: str, *, recursive: bool = False) -> list:
        from modal.exception import NotFoundError
        from modal.volume import FileEntry, FileEntryType

        base = self._path(path)
        if not base.exists():
            raise NotFoundError(f"No such file or directory: {path}")
        found = base.rglob("*") if recursive else base.iterdir()
        return [
            FileEntry(
                path=p.relative_to(self.root).as_posix(),
                type=FileEntryType.FILE if p.is_file() else FileEntryType.DIRECTORY,
                mtime=int(p.stat().st_mtime),
                size=p.stat().st_size if p.is_file() else 0,
            )
            for p in sorted(found)
            if not p.relative_to(self.root).as_posix().startswith(PRIVATE) and ".rehearsal-partial" not in p.name
        ]

    def remove_file(self, path: str, recursive: bool = False) -> None:
        target = self._path(path)
        with _committing(self.root):
            if target.is_dir() and recursive:
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            else:
                raise FileNotFoundError(f"No such file: {path}")

    @contextmanager
    def batch_upload(self, force: bool = False) -> Iterator[_Batch]:
        batch = _Batch(self, force)
        yield batch
        batch.finish()


def _chunks(file: Path) -> Iterator[bytes]:
    with open(file, "rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


class _Batch:
    """Uploads collected and committed together, refusing to overwrite unless force (like modal's)."""

    def __init__(self, volume: RehearsalVolume, force: bool) -> None:
        self.volume, self.force = volume, force
        self.files: list[tuple[Path | bytes, Path, str]] = []

    def put_file(self, local_file: Path | str | BinaryIO, remote_path: str) -> None:
        source = local_file.read() if hasattr(local_file, "read") else Path(local_file)
        self.files.append((source, self.volume._path(remote_path), remote_path))

    def put_directory(self, local_path: Path | str, remote_path: str) -> None:
        for file in sorted(Path(local_path).rglob("*")):
            if file.is_file():
                self.put_file(file, f"{remote_path.rstrip('/')}/{file.relative_to(local_path).as_posix()}")

    def finish(self) -> None:
        for _source, target, name in self.files:
            if target.exists() and not self.force:
                raise FileExistsError(f"{name} already exists on the volume")
        with _committing(self.volume.root):
            for source, target, _ in self.files:
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.rehearsal-partial")
                if isinstance(source, bytes):
                    partial.write_bytes(source)
                else:
                    shutil.copyfile(source, partial)
                partial.replace(target)
