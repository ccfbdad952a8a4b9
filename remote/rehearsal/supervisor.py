"""The process that stands in for Modal's scheduling of one call: `python -m remote.rehearsal.supervisor CALL_DIR`.

It runs the call's attempts, each a process of its own with the function's environment (its image's
variables and the keys of the secrets it mounts, taken from the caller's environment), kills an
attempt that outlives the function's timeout, retries a failure as the function's Retries say,
restarts a preempted input without counting it, and stops on cancel (SIGTERM from
RehearsalCall.cancel).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from remote.container import VOLUME_ROOT_VARIABLE
from remote.contract import APP_VERSION_VARIABLE
from remote.rehearsal import SECRETS_DIR, faults
from remote.rehearsal.processes import become_subreaper, kill_below
from remote.rehearsal.volume import FUNCTION_ENV, MOUNT_ENV, ROOT_ENV

# What every process needs to start, whatever its function: the rest of the caller's environment stays out.
PROCESS_VARIABLES = ("PATH", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "TERM", "TZ")
# The caller's settings of the rehearsal itself, and of the processes' own housekeeping.
REHEARSAL_VARIABLES = ("MOTIONCOACH_REHEARSE_VOLUME", "MOTIONCOACH_REHEARSAL_FAULTS")
CHECKPOINT_POLL_VARIABLE = "MOTIONCOACH_CHECKPOINT_POLL_S"
CANCEL_GRACE_SECONDS = 20.0
POLL_SECONDS = 0.2


@dataclass
class Outcome:
    kind: str  # finished | failed | preempted | timeout | cancelled | crashed
    error: BaseException | None = None


class Supervisor:
    def __init__(self, call_dir: Path):
        self.call_dir = Path(call_dir)
        self.root = self.call_dir.parents[2]  # <root>/.rehearsal/calls/<id>
        self.request = json.loads((self.call_dir / "input.json").read_text())
        self.spec = self.request["spec"]  # what the app declares for the function (calls.function_spec)
        self.stopping = False
        self.process: subprocess.Popen | None = None
        signal.signal(signal.SIGTERM, self._cancel)
        become_subreaper()  # what an attempt leaves running is found, and dies with its container

    def _cancel(self, signum, frame) -> None:
        self.stopping = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the function sees InputCancellation

    def run(self) -> int:
        failures, attempt = 0, 0
        while True:
            outcome = self._attempt(attempt)
            attempt += 1
            if outcome.kind == "finished":
                (self.call_dir / f"attempts/{attempt - 1}/result.json").replace(self.call_dir / "result.json")
                return 0
            if outcome.kind == "cancelled" or self.stopping:
                return self._settle_cancelled()
            if outcome.kind == "preempted":
                print(f"attempt {attempt - 1} was preempted: restarting the input", flush=True)
                continue
            failures += 1
            retries = self.spec["retries"]
            if retries is None or failures > retries["max_retries"]:
                (self.call_dir / "error.pickle").write_bytes(_pickled(outcome.error))
                return 1
            delay = min(
                retries["initial_delay_s"] * retries["backoff_coefficient"] ** (failures - 1), retries["max_delay_s"]
            )
            print(f"attempt {attempt - 1} failed ({outcome.kind}); retry {failures} in {delay:.0f} s", flush=True)
            if self._sleep(delay):
                return self._settle_cancelled()

    def _attempt(self, number: int) -> Outcome:
        attempt_dir = self.call_dir / "attempts" / str(number)
        mount = attempt_dir / "mount"
        attempt_dir.mkdir(parents=True)
        env = self._environment(mount)
        # The names (never the values) the container saw, for whoever audits the rehearsal.
        (attempt_dir / "environment.json").write_text(json.dumps(sorted(env)))
        with open(self.call_dir / "output.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "remote.rehearsal.attempt", str(self.call_dir), str(attempt_dir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            )  # fmt: skip
        timeout = self.spec["timeout"]
        deadline = time.monotonic() + timeout
        try:
            while self.process.poll() is None:
                if time.monotonic() > deadline:
                    kill_below(os.getpid())
                    from modal.exception import FunctionTimeoutError

                    name = self.request["function"]
                    return Outcome("timeout", FunctionTimeoutError(f"{name} timed out after {timeout} s"))
                if self.stopping:
                    return self._stop_attempt()
                time.sleep(POLL_SECONDS)
            if (attempt_dir / "preempted").exists():
                return Outcome("preempted")
            if (attempt_dir / "result.json").exists():
                return Outcome("finished")
            if self.stopping:
                return Outcome("cancelled")
            if (attempt_dir / "error.pickle").exists():
                return Outcome("failed", pickle.loads((attempt_dir / "error.pickle").read_bytes()))
            from modal.exception import RemoteError

            return Outcome("crashed", RemoteError(f"the container exited with code {self.process.returncode}"))
        finally:
            kill_below(os.getpid())  # the container is gone: so is everything it started
            shutil.rmtree(mount, ignore_errors=True)

    def _stop_attempt(self) -> Outcome:
        """Cancelled: the function has its grace to clean up (it sees InputCancellation), then dies."""
        terminate = json.loads((self.call_dir / "cancelled").read_text() or "{}").get("terminate_containers")
        grace = 2.0 if terminate else CANCEL_GRACE_SECONDS
        end = time.monotonic() + grace
        while self.process.poll() is None and time.monotonic() < end:
            time.sleep(POLL_SECONDS)
        kill_below(os.getpid())
        return Outcome("cancelled")

    def _settle_cancelled(self) -> int:
        (self.call_dir / "cancelled").touch()
        return 1

    def _sleep(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.stopping:
                return True
            time.sleep(POLL_SECONDS)
        return self.stopping

    def _environment(self, mount: Path) -> dict[str, str]:
        """The container's environment: its image's variables and its secrets' keys, nothing else of the caller's."""
        caller = os.environ
        home = caller.get("HOME", "/root")
        env = {name: caller[name] for name in PROCESS_VARIABLES + REHEARSAL_VARIABLES if name in caller}
        env["HOME"] = home
        # The image's variables, their paths under the caller's home standing for the container's /root.
        env |= {
            k: v.replace("/root/", f"{home}/", 1) if v.startswith("/root/") else v for k, v in self.spec["env"].items()
        }
        for secret in self.spec["secrets"]:
            stored = self.root / SECRETS_DIR / f"{secret['name']}.json"
            if stored.is_file():  # what the workspace's secret holds, whatever this machine's variables say
                env |= {str(key): str(value) for key, value in json.loads(stored.read_text()).items()}
            else:
                env |= {key: caller[key] for key in secret["keys"] if key in caller}
        if self.request["function"] == "app_version" and faults.fire_once(self.root, "stale@deploy"):
            env[APP_VERSION_VARIABLE] = "0" * 16  # a deployment of older code

        env |= {
            VOLUME_ROOT_VARIABLE: str(mount),  # read by remote.container.data_root()
            ROOT_ENV: str(self.root),
            MOUNT_ENV: str(mount),
            FUNCTION_ENV: self.request["function"],
            CHECKPOINT_POLL_VARIABLE: "0.5",  # commit checkpoints as they complete, at the CPU recipe's pace
            "PYTHONUNBUFFERED": "1",
        }
        return env


def _pickled(error: BaseException | None) -> bytes:
    from modal.exception import RemoteError

    try:
        data = pickle.dumps(error)
        pickle.loads(data)
        return data
    except Exception:  # noqa: BLE001 - an exception that does not pickle travels as text
        return pickle.dumps(RemoteError(repr(error)))


if __name__ == "__main__":
    sys.exit(Supervisor(Path(sys.argv[1])).run())
