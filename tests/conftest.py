"""Shared fixtures and a hermetic test run.

Every run keeps its home, Prefect home, Ultralytics settings and Hugging Face and matplotlib caches
in a temporary folder of its own (set here, before anything reads them), and forgets the
developer's keys and service addresses, so no test reads or writes the real `~/.prefect` or talks
to a real service by accident. Heavy things are built once per run: the Prefect test server and the
tiny Qwen3-VL.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

SESSION_ROOT = Path(tempfile.mkdtemp(prefix="motioncoach-tests-"))
HOME = SESSION_ROOT / "home"
# Keys and addresses of real services, and settings of a developer's own runs: a test sets what it needs.
FORGOTTEN = (
    "GEMINI_API_KEY", "OPENROUTER_API_KEY", "GOOGLE_GEMINI_BASE_URL", "OPENROUTER_BASE_URL", "HF_TOKEN",
    "HF_ADAPTER_REPO_ID", "HF_DATASET_REPO_ID", "HF_MERGED_REPO_ID", "HF_ENDPOINT", "KAGGLE_API_TOKEN",
    "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "PREFECT_API_URL", "PREFECT_API_KEY",
)  # fmt: skip
HERMETIC = {
    "HOME": HOME,
    "PREFECT_HOME": HOME / ".prefect",
    "YOLO_CONFIG_DIR": HOME / ".config" / "ultralytics",
    "HF_HOME": HOME / ".cache" / "huggingface",
    "MPLCONFIGDIR": HOME / ".config" / "matplotlib",
    "XDG_CACHE_HOME": HOME / ".cache",
    "XDG_CONFIG_HOME": HOME / ".config",
    "MODAL_CONFIG_PATH": HOME / ".modal.toml",
}
for _name in [*FORGOTTEN, *(n for n in os.environ if n.startswith(("MODAL_", "MOTIONCOACH_")))]:
    os.environ.pop(_name, None)
for _name, _path in HERMETIC.items():
    _path.mkdir(parents=True, exist_ok=True) if _name != "MODAL_CONFIG_PATH" else None
    os.environ[_name] = str(_path)
# The fake Hub speaks Git LFS, as the real Hub still does; huggingface_hub reads this at import.
os.environ["HF_HUB_DISABLE_XET"] = "1"

from motioncoach.runtime import apply_local_defaults  # noqa: E402 - after the environment above

apply_local_defaults()


def pytest_collection_modifyitems(config, items):
    """Tests that need the Prefect server run after the others (it starts in the background meanwhile), each
    group in its collection order; `gpu` tests skip cleanly without a CUDA device."""
    items[:] = sorted(items, key=_needs_prefect_server)  # stable: False (no server) first
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    if _PREFECT_SERVER is not None and _PREFECT_SERVER.failure is None:
        import logging

        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # the runs' last logs reach the server before it goes
        logging.disable(logging.INFO)  # its "Stopping" line would go to a console pytest has closed
        try:
            _PREFECT_SERVER.server.stop()
        finally:
            logging.disable(logging.NOTSET)
    shutil.rmtree(SESSION_ROOT, ignore_errors=True)


class BackgroundPrefectServer:
    """The session's Prefect server (SQLite in the hermetic PREFECT_HOME), started in the background as soon as
    the tests are collected, so it is up by the time the first test that runs flows needs it."""

    def __init__(self):
        from prefect.server.api.server import SubprocessASGIServer

        self.server = SubprocessASGIServer()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._start, name="prefect-test-server", daemon=True)
        self.thread.start()

    def _start(self) -> None:
        try:
            self.server.start(timeout=180)
        except BaseException as exc:  # noqa: BLE001 - raised in the test that needs the server
            self.failure = exc

    def ready(self):
        self.thread.join()
        if self.failure is not None:
            raise RuntimeError(f"the Prefect test server did not start: {self.failure}") from self.failure
        return self.server


_PREFECT_SERVER: BackgroundPrefectServer | None = None


def _needs_prefect_server(item) -> bool:
    return "prefect_server" in getattr(item, "fixturenames", ())


def pytest_collection_finish(session):
    """Start the Prefect server while the tests that do not need it run first."""
    global _PREFECT_SERVER
    if _PREFECT_SERVER is None and any(_needs_prefect_server(item) for item in session.items):
        _PREFECT_SERVER = BackgroundPrefectServer()


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server with SQLite, shared by every test that runs flows."""
    import prefect.settings

    background = _PREFECT_SERVER or BackgroundPrefectServer()
    server = background.ready()
    with prefect.settings.temporary_settings(updates={prefect.settings.PREFECT_API_URL: server.api_url}):
        yield  # the server stops at the end of the session (pytest_sessionfinish)


@pytest.fixture(scope="session")
def prefect_api_url(prefect_server) -> str:
    """The test server's API, for CLI subprocesses that must report to it."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.fixture
def task_states(prefect_server):
    """task name -> state name of every task run in a flow run and its subflow runs; where a retry ran a task
    again, the latest run's state."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    def states(flow_run_id) -> dict[str, str]:
        with get_client(sync_client=True) as client:
            ids = [flow_run_id]
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
            )
            ids += [child.id for child in children]
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
            runs = sorted(runs, key=lambda run: run.created)  # a later run of the same task replaces an earlier
            return {run.name.rsplit("-", 1)[0]: run.state.name for run in runs}

    return states


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny random Qwen3-VL, built once per test run; read-only (copy it with place_tiny_model)."""
    from motioncoach.training.tiny_model import build_tiny_qwen3_vl

    return build_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny-model") / "tiny-qwen3-vl")


@pytest.fixture(scope="session")
def place_tiny_model(tiny_model):
    """Put the session's tiny model at dest (where a data dir or a volume keeps it), as hard links."""

    def place(dest: Path) -> Path:
        dest = Path(dest)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(tiny_model, dest, copy_function=_link_or_copy)
        return dest

    return place


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)
