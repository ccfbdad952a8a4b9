"""The modal profile's connection: credentials, the deployed functions, and files on the volume.

Prefect-free, and modal is imported only when a connection is made, so the local profile never
loads it. The credential check reads what the Modal client would read (the MODAL_* variables,
then the active profile of ~/.modal.toml or $MODAL_CONFIG_PATH) without contacting Modal.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from motioncoach.config import MODAL_SECRETS, ModalConfig
from motioncoach.errors import ConfigurationError

MISSING_CREDENTIALS = (
    "Modal credentials are missing: run `modal token new`, or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET."
)
DEPLOY_COMMAND = "modal deploy -m remote.app"
OWNER_VARIABLE = "MOTIONCOACH_RUN_OWNER"  # who the paid calls a client spawns belong to (its flow run)
PAID_CALLS_FILE = "modal_calls.json"  # in the local data dir: the paid calls its runs spawned


def check_modal_credentials() -> None:
    """Raise ConfigurationError(MISSING_CREDENTIALS) unless a Modal token is configured; no network."""
    from remote.rehearsal import rehearsal_root

    if rehearsal_root() is not None:
        return  # a rehearsal needs no account
    env = os.environ
    profile = _modal_profile()
    if env.get("MODAL_OAUTH_REFRESH_TOKEN") or profile.get("oauth_refresh_token"):
        return  # third-party OAuth: the Modal client checks the rest
    token_id = env.get("MODAL_TOKEN_ID") or profile.get("token_id")
    token_secret = env.get("MODAL_TOKEN_SECRET") or profile.get("token_secret")
    if not (token_id and token_secret):
        raise ConfigurationError(MISSING_CREDENTIALS)


def _modal_profile() -> dict:
    """The active profile's settings in Modal's config file, or {} when there is none."""
    path = Path(os.environ.get("MODAL_CONFIG_PATH") or Path.home() / ".modal.toml")
    try:
        config = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(
            f"Modal's config file {path} cannot be read ({exc}): fix it or run `modal token new`."
        ) from exc
    sections = {name: values for name, values in config.items() if isinstance(values, dict)}
    name = os.environ.get("MODAL_PROFILE") or next((n for n, v in sections.items() if v.get("active")), "default")
    return sections.get(name, {})


@contextmanager
def modal_errors() -> Iterator[None]:
    """Turn Modal's missing-token and missing-object errors into messages that say what to run."""
    from modal.exception import AuthError, NotFoundError

    try:
        yield
    except AuthError as exc:
        raise ConfigurationError(f"{MISSING_CREDENTIALS} (Modal said: {exc})") from exc
    except NotFoundError as exc:
        text = str(exc)
        secret = next((name for name in MODAL_SECRETS if name in text), None)
        if secret:
            raise ConfigurationError(
                f"The Modal secret {secret!r} does not exist: create it with `{MODAL_SECRETS[secret]}`, "
                f"then `{DEPLOY_COMMAND}`."
            ) from exc
        raise ConfigurationError(
            f"{text}: deploy the MotionCoach app first with `{DEPLOY_COMMAND}` (after `modal token new`)."
        ) from exc


def check_modal_ready(data_dir: Path, settings: ModalConfig | None = None) -> None:
    """Credentials, the app's secrets, and a deployed app that runs this checkout's code: checked in
    seconds, before any work (a rehearsal's secrets come from local variables)."""
    from remote.rehearsal import rehearsal_root

    settings = settings or ModalConfig()
    if rehearsal_root() is None:
        check_modal_credentials()
        import modal

        with modal_errors():
            for name in MODAL_SECRETS:
                modal.Secret.from_name(name).hydrate()
    check_deployed_version(connect(data_dir, settings))


_CHECKED_VERSIONS: set[tuple[str, str]] = set()  # (app, volume or rehearsal) already found to match, per process


def check_deployed_version(remote: Remote) -> None:
    """Stop, naming the deploy command, when the deployed app is not this checkout's code: after a `git pull`
    without `modal deploy`, a paid run would run the old functions (or fail on a field the old code forbids)."""
    from remote.contract import checkout_version

    key = (remote.settings.app_name, str(getattr(remote.volume, "root", remote.settings.volume_name)))
    if key in _CHECKED_VERSIONS:
        return
    with modal_errors():
        deployed = remote.function("app_version").remote()
    here = checkout_version()
    if deployed == here:
        _CHECKED_VERSIONS.add(key)
    else:
        raise ConfigurationError(
            f"The deployed Modal app {remote.settings.app_name!r} runs other code (version {deployed or 'unknown'}) "
            f"than this checkout (version {here}): deploy this checkout first with `{DEPLOY_COMMAND}`. "
            "Nothing was run."
        )


@dataclass
class Remote:
    """The deployed functions and the volume, for one data dir (/data/<name> on the volume)."""

    function: Callable[[str], Any]  # function name -> modal.Function (remote, spawn)
    volume: Any  # modal.Volume: read_file, listdir, batch_upload
    name: str
    settings: ModalConfig = field(default_factory=ModalConfig)
    call_from_id: Callable[[str], Any] | None = None  # modal.FunctionCall.from_id: re-attach to a spawned call
    rehearsal: bool = False  # functions run as local processes: the heavy models are swapped for local ones
    claims: Any = None  # the claims modal.Dict: put(skip_if_exists=True) is atomic (remote.contract)
    data_dir: Path | None = None  # the local data dir, where the paid calls its runs spawn are recorded
    owner: str = ""  # the run the calls belong to: only its own are cancelled by its hooks

    @property
    def calls_book(self) -> Path | None:
        """The local record of the paid calls spawned for this data dir (remote.paid)."""
        return Path(self.data_dir) / PAID_CALLS_FILE if self.data_dir is not None else None

    def read(self, path: str) -> bytes:
        """A small file's bytes from the volume (records, logs); fetch() streams anything larger to disk. A read
        that Modal fails with an outage of its own is made again."""
        return self._again(f"reading {path}", lambda: b"".join(self._chunks(path)))

    def fetch(self, path: str, dest: Path) -> Path:
        """Copy a volume file to dest, streamed in chunks, atomically (again from the start after an outage)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.partial")

        def copy() -> None:
            with open(partial, "wb") as out:
                for chunk in self._chunks(path):
                    out.write(chunk)

        try:
            self._again(f"fetching {path}", copy)
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    def _again(self, what: str, attempt: Callable[[], Any]) -> Any:
        from remote.outcomes import reaching_modal

        return reaching_modal(what, attempt, self.settings.outage_wait_seconds)

    def _chunks(self, path: str):
        from modal.exception import NotFoundError

        try:
            yield from self.volume.read_file(path)
        except (NotFoundError, FileNotFoundError) as exc:  # modal 1.6 raises the builtin
            raise FileNotFoundError(f"{path} is not on the Modal volume {self.settings.volume_name!r}") from exc

    def files_under(self, path: str) -> list[str]:
        """Every file below a volume directory, as volume paths."""
        from modal.exception import NotFoundError
        from modal.volume import FileEntryType

        try:
            entries = self.volume.listdir(path, recursive=True)
        except NotFoundError as exc:
            raise FileNotFoundError(f"{path} is not on the Modal volume {self.settings.volume_name!r}") from exc
        return sorted(e.path for e in entries if e.type == FileEntryType.FILE)

    def fetch_dir(self, path: str, dest: Path) -> Path:
        """Copy a volume directory's files into dest (a fresh temporary directory is a good dest)."""
        for file in self.files_under(path):
            self.fetch(file, Path(dest) / PurePosixPath(file).relative_to(path.strip("/")))
        return Path(dest)

    def write(self, path: str, data: bytes) -> None:
        """Put bytes at a volume path, replacing what is there."""
        import io

        with modal_errors(), self.volume.batch_upload(force=True) as batch:
            batch.put_file(io.BytesIO(data), path)

    def remove(self, path: str) -> None:
        """Delete a volume file."""
        with modal_errors():
            self.volume.remove_file(path)

    def upload_dir(self, local: Path, path: str) -> None:
        """Put a local directory's files at a volume path, replacing files of the same name."""
        with modal_errors(), self.volume.batch_upload(force=True) as batch:
            batch.put_directory(str(local), path)


def connect(data_dir: Path, settings: ModalConfig | None = None) -> Remote:
    """The deployed app for data_dir; fails with what to run when credentials or the app are missing.

    With --rehearse-volume the app runs from this checkout, each call in a local process, on a directory.
    """
    from remote.contract import CLAIMS_DICT
    from remote.rehearsal import rehearsal_root

    settings = settings or ModalConfig()
    root = rehearsal_root()
    where = {"name": Path(data_dir).name, "settings": settings, "data_dir": Path(data_dir), "owner": run_owner()}
    if root is not None:
        from remote.rehearsal import faults
        from remote.rehearsal.calls import RehearsalCall, RehearsalFunction
        from remote.rehearsal.dicts import RehearsalDict
        from remote.rehearsal.volume import RehearsalVolume

        root.mkdir(parents=True, exist_ok=True)
        faults.arm(root)
        return Remote(
            function=lambda name: RehearsalFunction(root, name),
            volume=RehearsalVolume(root),
            call_from_id=lambda object_id: RehearsalCall.from_id(root, object_id),
            rehearsal=True,
            claims=RehearsalDict(root, CLAIMS_DICT),
            **where,
        )
    check_modal_credentials()
    import modal

    def function(name: str) -> Any:
        with modal_errors():
            return modal.Function.from_name(settings.app_name, name).hydrate()

    return Remote(
        function=function,
        volume=modal.Volume.from_name(settings.volume_name),
        call_from_id=modal.FunctionCall.from_id,
        claims=modal.Dict.from_name(CLAIMS_DICT, create_if_missing=True),
        **where,
    )


def run_owner() -> str:
    """Who the calls spawned now belong to: the flow run holding the data dir (tasks.locks sets it), else
    this process."""
    import socket

    return os.environ.get(OWNER_VARIABLE) or f"process {os.getpid()} on {socket.gethostname()}"


def volume_get_command(settings: ModalConfig, path: str, dest: Path) -> str:
    """The `modal volume get` line that puts the volume directory `path` at dest (its last part named alike)."""
    return f"modal volume get --force {settings.volume_name} {path} {Path(dest).parent}"


@contextmanager
def scratch_dir_beside(dest: Path) -> Iterator[Path]:
    """A temporary directory on dest's file system, removed afterwards."""
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{Path(dest).name}.download.", dir=Path(dest).parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
