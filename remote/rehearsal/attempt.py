"""The process one attempt of a rehearsed call runs in: `python -m remote.rehearsal.attempt CALL_DIR ATTEMPT_DIR`.

It takes its mount of the volume, runs the function body of the app on the call's JSON input (paths
under /data pointing into the mount, as the container's /data is its mount), and writes the result or
the exception for the supervisor. SIGTERM is a cancelled input: the function sees InputCancellation.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from remote.rehearsal import faults
from remote.rehearsal.volume import mounted_volume

MOUNT = "/data"
TRAINING = ("train", "train_smoke")
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
    mount = mounted_volume().mount  # the volume as of this attempt's start
    try:
        from deployments import modal_app

        warnings.filterwarnings("ignore", message=".*executing locally.*")
        if request["function"] in TRAINING and faults.fire_once(mounted_volume().root, "oom@train"):
            _swift_out_of_memory(attempt_dir)
        function = getattr(modal_app, request["function"])
        args, kwargs = rebase(request["args"], MOUNT, str(mount)), rebase(request["kwargs"], MOUNT, str(mount))
        result = function.local(*args, **kwargs)
        payload = json.dumps(rebase(json.loads(json.dumps(result)), str(mount), MOUNT))
        partial = attempt_dir / ".result.json.partial"
        partial.write_text(payload)
        partial.replace(attempt_dir / "result.json")
        return 0
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the caller, as Modal does
        traceback.print_exc()
        try:
            data = pickle.dumps(error)
            pickle.loads(data)
        except Exception:  # noqa: BLE001 - an exception that does not pickle travels as text
            from modal.exception import RemoteError

            data = pickle.dumps(RemoteError("".join(traceback.format_exception(error))))
        (attempt_dir / "error.pickle").write_bytes(data)
        return 1


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), Path(sys.argv[2])))
