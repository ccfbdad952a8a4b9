"""The process one attempt of a rehearsed call runs in: `python -m remote.rehearsal.attempt CALL_DIR ATTEMPT_DIR`.

It takes its mount of the volume, installs the stand-ins of Modal's volume, claims Dict and call id into
remote.container (the app never imports the rehearsal), runs the function body of the app on the call's
JSON input (paths under /data pointing into the mount, as the container's /data is its mount) with only
what the image ships importable, and writes the result or the exception for the supervisor. Its writes
are committed in the background and when it exits, as Modal commits a container's. SIGTERM is a
cancelled input: the function sees InputCancellation.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import pickle
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from remote.contract import CLAIMS_DICT, ROOT, VOLUME_PATH
from remote.rehearsal import faults
from remote.rehearsal.calls import ENTERED, TRAINING
from remote.rehearsal.dicts import RehearsalDict
from remote.rehearsal.volume import mounted_volume

BACKGROUND_COMMIT_SECONDS = float(os.environ.get("MOTIONCOACH_REHEARSAL_BACKGROUND_COMMIT_S", "20"))


class ImageOnly(importlib.abc.MetaPathFinder):
    """Refuses the checkout's packages that no image ships (remote.images.SHIPPED_PACKAGES): a body that
    imports tasks, flows or the CLI works here and fails on Modal."""

    def __init__(self, shipped: tuple[str, ...]):
        self.unshipped = {
            p.name.removesuffix(".py") for p in ROOT.iterdir()
            if (p.is_dir() and (p / "__init__.py").exists() or p.suffix == ".py") and p.name.removesuffix(".py")
            not in shipped
        }  # fmt: skip

    def find_spec(self, fullname, path, target=None):
        if fullname.partition(".")[0] in self.unshipped:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: the Modal images ship only {', '.join(SHIPPED)} of the checkout",
                name=fullname,
            )
        return None


SHIPPED = ("motioncoach", "remote")
# swift as a process that runs out of GPU memory: the oom@train fault puts it first on PYTHONPATH.
OUT_OF_MEMORY = (
    "import sys\n"
    "print('Traceback (most recent call last):', file=sys.stderr)\n"
    "print('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.32 GiB. GPU 0 has a total capacity of "
    "139.81 GiB of which 1.02 GiB is free. (rehearsed fault oom@train)', file=sys.stderr)\n"
    "sys.exit(1)\n"
)


def rebase(value: Any, old: str, new: str) -> Any:
    """Every string path under old in a JSON value, moved under new (lists and dicts walked)."""
    if isinstance(value, str) and (value == old or value.startswith(old + "/")):
        return new + value[len(old) :]
    if isinstance(value, list):
        return [rebase(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: rebase(v, old, new) for k, v in value.items()}
    return value


def _swift_out_of_memory(attempt_dir: Path) -> None:
    fake = attempt_dir / "oom-swift" / "swift" / "cli"
    fake.mkdir(parents=True)
    for package in (fake.parent, fake):
        (package / "__init__.py").write_text("")
    for module in ("sft.py", "main.py"):
        (fake / module).write_text(OUT_OF_MEMORY)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(fake.parent.parent), os.environ.get("PYTHONPATH")]))


def run(call_dir: Path, attempt_dir: Path) -> int:
    import warnings

    from modal.exception import InputCancellation

    def cancelled(signum, frame):
        # What a cancelled Modal input sees: an exception in the function, so its cleanup runs
        # (run_sft stops the swift process group it started).
        raise InputCancellation("the function call was cancelled")

    signal.signal(signal.SIGTERM, cancelled)
    request = json.loads((call_dir / "input.json").read_text())
    volume = mounted_volume()  # the volume as of this attempt's start
    mount = volume.mount
    stop = threading.Event()
    threading.Thread(target=_commit_in_background, args=(volume, stop), daemon=True).start()
    try:
        from remote import container

        container.install(volume=volume, claims=RehearsalDict(volume.root, CLAIMS_DICT), call_id=call_dir.name)
        sys.meta_path.insert(0, ImageOnly(SHIPPED))
        from remote import app

        warnings.filterwarnings("ignore", message=".*executing locally.*")
        if request["function"] in TRAINING and faults.fire_once(volume.root, "oom@train"):
            _swift_out_of_memory(attempt_dir)
        function = getattr(app, request["function"])
        args = rebase(request["args"], VOLUME_PATH, str(mount))
        kwargs = rebase(request["kwargs"], VOLUME_PATH, str(mount))
        (attempt_dir / ENTERED).touch()
        result = function.local(*args, **kwargs)
        payload = json.dumps(rebase(json.loads(json.dumps(result)), str(mount), VOLUME_PATH))
        _commit_at_exit(volume, stop)
        partial = attempt_dir / ".result.json.partial"
        partial.write_text(payload)
        partial.replace(attempt_dir / "result.json")
        return 0
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the caller, as Modal does
        _commit_at_exit(volume, stop)
        traceback.print_exc()
        try:
            data = pickle.dumps(error)
            pickle.loads(data)
        except Exception:  # noqa: BLE001 - an exception that does not pickle travels as text
            from modal.exception import RemoteError

            data = pickle.dumps(RemoteError("".join(traceback.format_exception(error))))
        (attempt_dir / "error.pickle").write_bytes(data)
        return 1


def _commit_in_background(volume, stop: threading.Event) -> None:
    """Modal commits a container's writes in the background now and then."""
    while not stop.wait(BACKGROUND_COMMIT_SECONDS):
        try:
            volume.background_commit()
        except Exception:  # noqa: BLE001 - a background commit that fails is simply made later
            pass


def _commit_at_exit(volume, stop: threading.Event) -> None:
    """What the container wrote is committed when it exits, as Modal does."""
    stop.set()
    try:
        volume.background_commit()
    except Exception:  # noqa: BLE001 - nothing more to do for a container that is going
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), Path(sys.argv[2])))
