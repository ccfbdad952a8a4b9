"""Ship what passed the gate: the release files, the Hub uploads, and the run's final word."""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from motioncoach.benchmarks.metrics import BenchmarkReport
from motioncoach.config import Profile
from motioncoach.dataset import SplitSummary
from motioncoach.errors import ConfigurationError
from motioncoach.evaluation import EvalReport, GateDecision, write_eval_files
from motioncoach.evaluation.gallery import GALLERY_DIR, draw_gallery
from motioncoach.publish import (
    HubError,
    HubSettings,
    HubStatus,
    Lineage,
    ReleaseConfig,
    build_lineage,
    check_hub_settings,
    check_write_access,
    plan_adapter_upload,
    stage_dataset,
    upload_adapter_folder,
    upload_folder,
    whoami,
    write_model_card,
)
from motioncoach.runtime import resolve_dir
from motioncoach.training.session import TrainedAdapter
from remote.steps import modal_adapter
from tasks import reporting


@task(name="hub-preflight", cache_policy=NO_CACHE)
def hub_preflight(release: ReleaseConfig, profile: Profile = Profile.local, data_dir: Path = Path("./data")) -> None:
    """Fail within seconds, naming the variable, when an upload is asked for but HF_TOKEN is missing or rejected."""
    logger = get_run_logger()
    settings = HubSettings()
    if profile == Profile.modal:
        return _modal_hub_preflight(settings, release, data_dir)
    check_hub_settings(settings, release.push_dataset)
    if not settings.adapter_repo_id and not release.push_dataset:
        logger.info("HF_ADAPTER_REPO_ID is not set: the adapter will stay local")
        return
    for repo_id in _repos_to_write(settings, release):  # a read-only token fails now, not after training
        check_write_access(settings, release.hub, repo_id)
    logger.info("HF_TOKEN belongs to %s on %s", whoami(settings, release.hub), settings.endpoint)


def _repos_to_write(settings: HubSettings, release: ReleaseConfig) -> list[str]:
    repos = [settings.adapter_repo_id, settings.dataset_repo if release.push_dataset else None]
    return [repo for repo in repos if repo]


def _modal_hub_preflight(settings: HubSettings, release: ReleaseConfig, data_dir: Path) -> None:
    """On Modal the upload runs there: the token is huggingface-secret's, the repos are named here.

    A repo named in the secret and not here (or otherwise), or a local HF_TOKEN, is said, never ignored.
    """
    from remote import client as modal_client
    from remote import steps as modal_steps

    logger = get_run_logger()
    check_hub_settings(settings.model_copy(update={"token": None}), release.push_dataset, token_required=False)
    repos = _repos_to_write(settings, release) + ([settings.merged_repo_id] if settings.merged_repo_id else [])
    account = modal_steps.hub_account(modal_client.connect(resolve_dir(data_dir)), release.hub, repos)
    for variable, here, there in (
        ("HF_ADAPTER_REPO_ID", settings.adapter_repo_id, account.get("adapter_repo_id")),
        ("HF_DATASET_REPO_ID", settings.dataset_repo_id, account.get("dataset_repo_id")),
        ("HF_MERGED_REPO_ID", settings.merged_repo_id, account.get("merged_repo_id")),
    ):
        if there and there != here:
            raise ConfigurationError(
                f"{variable} is {there!r} in the Modal secret huggingface-secret but {here!r} here. On the modal "
                f"profile the repo is read from this machine and the token from the secret: export "
                f"{variable}={there} here, or remove it from the secret (modal secret create --force ...)."
            )
    if settings.token is not None:
        logger.warning(
            "HF_TOKEN on this machine is not used on the modal profile: uploads run on Modal with the token "
            "in the secret huggingface-secret (it belongs to %s)",
            account["user"] or "nobody: the secret holds no HF_TOKEN",
        )
    if not repos:
        logger.info("no Hub repo is named (HF_ADAPTER_REPO_ID, HF_MERGED_REPO_ID): nothing will be uploaded")
        return
    logger.info("huggingface-secret's HF_TOKEN belongs to %s on %s", account["user"], settings.endpoint)


@task(name="write-release", cache_policy=NO_CACHE)
def write_release(
    trained: TrainedAdapter,
    splits: SplitSummary,
    report: EvalReport,
    decision: GateDecision,
    release: ReleaseConfig,
    adapter_dir: Path,
    data_dir: Path,
    benchmark: BenchmarkReport | None = None,
) -> Lineage:
    """eval.json, the gallery, lineage.json and the model card (README.md) in adapter_dir, on every run."""
    adapter_dir = Path(adapter_dir)
    settings = HubSettings()
    on_modal = modal_adapter(adapter_dir)
    remote = None
    if on_modal:
        from remote import client as modal_client
        from remote import steps as modal_steps

        remote = modal_client.connect(Path(on_modal["data_dir"]))
    eval_file = write_eval_files(report, adapter_dir, decision)
    gallery = draw_gallery(report, adapter_dir / GALLERY_DIR, report.config.gallery_images)
    if remote is not None:  # drawn where the images are, by evaluate_adapter on the volume
        gallery = modal_steps.fetch_gallery(remote, trained, adapter_dir / GALLERY_DIR)
    with tempfile.TemporaryDirectory(prefix="motioncoach-store-") as scratch:
        store = None
        if remote is not None:  # the label store, and with it the teacher's cost, is on the volume
            store = modal_steps.fetch_label_store(remote, Path(scratch) / "labels.sqlite")
        lineage = build_lineage(
            data_dir=Path(data_dir),
            splits=splits,
            trained=trained,
            report=report,
            decision=decision,
            adapter_dir=adapter_dir,
            hub=plan_adapter_upload(settings, decision, adapter_dir),
            dataset_hub=(
                HubStatus(status="pending", repo_id=settings.dataset_repo, repo_type="dataset")
                if release.push_dataset
                else None
            ),
            label_store=store,
            benchmark=benchmark.summary() if benchmark else None,
        )
    card = _record(lineage, release, adapter_dir)
    reporting.markdown("model-card", card.read_text(), "The model card (README.md), uploaded with the adapter")
    reporting.markdown("eval-json", _eval_markdown(report, decision), "eval.json: one entry per model, and the gate")
    reporting.markdown(
        "gallery",
        "Teacher (left) and adapter (right) on validation photos, in gallery/ beside the adapter and uploaded "
        "with it:\n\n" + "\n".join(f"- {p.name}" for p in gallery)
        if gallery
        else "none this run",
        f"{len(gallery)} validation photos drawn with the teacher's and the adapter's vectors",
    )
    get_run_logger().info(
        "release files in %s: %s, %s, lineage.json, %d gallery PNGs",
        adapter_dir,
        card.name,
        eval_file.name,
        len(gallery),
    )
    return lineage


@task(name="push-dataset", cache_policy=NO_CACHE)
def upload_dataset(
    lineage: Lineage, splits: SplitSummary, release: ReleaseConfig, adapter_dir: Path, data_dir: Path
) -> Lineage:
    """Upload the splits, their images, a dataset card and the sources' terms to the dataset repo."""
    settings = HubSettings()
    on_modal = modal_adapter(adapter_dir)
    try:
        if on_modal:  # the images are on the volume: stage and upload there
            from remote import client as modal_client
            from remote import steps as modal_steps

            remote = modal_client.connect(Path(on_modal["data_dir"]))
            status = modal_steps.upload_dataset_from_volume(
                remote, lineage.model_dump(mode="json"), settings.dataset_repo or "", release.hub
            )
        else:
            folder = stage_dataset(Path(data_dir), splits, lineage)
            status = upload_folder(
                folder, settings.dataset_repo or "", settings, release.hub, repo_type="dataset",
                commit_message="Upload MotionCoach dataset",
            )  # fmt: skip
    except (HubError, ConfigurationError) as exc:
        failed = HubStatus(
            status="failed",
            repo_id=settings.dataset_repo,
            repo_type="dataset",
            reason=reporting.shown_text(str(exc), Path(data_dir), Path(adapter_dir)),
        )
        _record(lineage.model_copy(update={"dataset_hub": failed}), release, Path(adapter_dir))
        raise
    get_run_logger().info("dataset uploaded to %s (%s)", status.repo_id, status.url)
    lineage = lineage.model_copy(update={"dataset_hub": status})
    _record(lineage, release, Path(adapter_dir))
    return lineage


@task(name="upload-adapter", cache_policy=NO_CACHE)
def upload_adapter(lineage: Lineage, release: ReleaseConfig, adapter_dir: Path) -> HubStatus:
    """Upload adapter_dir to HF_ADAPTER_REPO_ID when the gate passed; transient failures are retried."""
    logger = get_run_logger()
    adapter_dir = Path(adapter_dir)
    planned = lineage.hub
    on_modal = modal_adapter(adapter_dir)
    remote = None
    if on_modal:  # the card beside the weights on the volume, where `modal volume get` and the upload take it
        from remote import client as modal_client
        from remote import steps as modal_steps

        remote = modal_client.connect(Path(on_modal["data_dir"]))
        modal_steps.put_release_files(remote, adapter_dir, on_modal["path"])
    if planned.status == "skipped":
        logger.warning("upload skipped: %s", planned.reason)
        reporting.markdown("hub-upload", f"**Upload skipped**\n\n{planned.reason}\n", "Hugging Face Hub upload")
        return planned
    try:
        if remote is not None:
            status = modal_steps.upload_adapter_from_volume(
                remote, on_modal["path"], planned.repo_id or "", release.hub
            )
        else:
            status = upload_adapter_folder(adapter_dir, planned.repo_id or "", HubSettings(), release.hub)
    except (HubError, ConfigurationError) as exc:
        # Recorded in the card and artifacts, which other machines show: the adapter folder by its name.
        failed = planned.model_copy(update={"status": "failed", "reason": reporting.shown_text(str(exc), adapter_dir)})
        _record(lineage.model_copy(update={"hub": failed}), release, adapter_dir)
        reporting.markdown("hub-upload", f"**Upload failed**\n\n{failed.reason}\n", "Hugging Face Hub upload")
        raise
    _record(lineage.model_copy(update={"hub": status}), release, adapter_dir)
    logger.info("adapter uploaded to %s: %s", status.repo_id, status.url)
    reporting.markdown(
        "hub-upload",
        f"**Uploaded** to [{status.repo_id}]({status.repo_url}), "
        f"commit [{(status.commit or '')[:12]}]({status.url})\n\n"
        + "\n".join(f"- [{name}]({status.repo_url}/blob/main/{name})" for name in status.files),
        "Hugging Face Hub upload",
    )
    return status


@task(name="upload-merged", cache_policy=NO_CACHE)
def upload_merged(lineage: Lineage, release: ReleaseConfig, adapter_dir: Path, merged: str) -> HubStatus:
    """HF_MERGED_REPO_ID (opt-in): the merged release uploaded from the volume next to the adapter, when
    the adapter itself went up (the same gate)."""
    logger = get_run_logger()
    settings = HubSettings()
    adapter_dir = Path(adapter_dir)
    adapter = lineage_of(adapter_dir).hub
    if not settings.merged_repo_id:
        reason = "HF_MERGED_REPO_ID is not set: the merged release stays on the volume"
        status = HubStatus(status="skipped", reason=reason)
    elif adapter.status != "uploaded":
        status = HubStatus(
            status="skipped", repo_id=settings.merged_repo_id, reason=f"the adapter was not uploaded ({adapter.reason})"
        )
    else:
        from remote import client as modal_client
        from remote import steps as modal_steps

        on_modal = modal_steps.modal_adapter(adapter_dir) or {}
        remote = modal_client.connect(Path(on_modal.get("data_dir", adapter_dir.name)))
        folder = Path(merged).relative_to(remote.settings.volume_path).as_posix()
        try:
            status = modal_steps.upload_merged_from_volume(remote, folder, settings.merged_repo_id, release.hub)
        except (HubError, ConfigurationError) as exc:
            failed = HubStatus(
                status="failed", repo_id=settings.merged_repo_id, reason=reporting.shown_text(str(exc), adapter_dir)
            )
            _record(lineage_of(adapter_dir).model_copy(update={"merged_hub": failed}), release, adapter_dir)
            raise
    (logger.info if status.status == "uploaded" else logger.warning)("merged release: %s %s", status.status,
                                                                     status.repo_id or status.reason)  # fmt: skip
    _record(lineage_of(adapter_dir).model_copy(update={"merged_hub": status}), release, adapter_dir)
    return status


def lineage_of(adapter_dir: Path) -> Lineage:
    return Lineage.model_validate_json((Path(adapter_dir) / "lineage.json").read_text())


def _eval_markdown(report: EvalReport, decision: GateDecision) -> str:
    """What eval.json holds, as a table a browser shows: one row per model, then the gate's verdict."""
    metrics = ("json_valid_rate", "schema_valid_rate", "grounded_rate", "score_mae", "agreement")

    def cells(model: dict) -> str:
        return " | ".join("n/a" if model[k] is None else f"{model[k]:.3f}" for k in metrics)

    rows = "\n".join(f"| {m['model']} | {m['rows']} | {cells(m)} |" for m in report.table())
    verdict = "passed" if decision.passed else "not passed"
    return (
        f"| model | rows | {' | '.join(metrics)} |\n|---|---|{'---|' * len(metrics)}\n{rows}\n\n"
        f"**Release gate {verdict}**: {decision.reason}\n"
    )


def release_state(status: HubStatus, adapter_dir: Path) -> State:
    """The flow's final state: Completed, named for where the adapter went, returning adapter_dir."""
    if status.status == "uploaded":
        return Completed(name="Published", message=f"uploaded to {status.repo_id} ({status.url})", data=adapter_dir)
    return Completed(name="Kept local", message=f"adapter in {adapter_dir}; {status.reason}", data=adapter_dir)


def forward_state(finished: State) -> State:
    """A parent flow's final state: its subflow's name and message (Published / Kept local) and result."""
    return Completed(name=finished.name, message=finished.message, data=finished.result())


def _record(lineage: Lineage, release: ReleaseConfig, adapter_dir: Path) -> Path:
    """lineage.json and README.md in adapter_dir, and the lineage artifact; returns the card's path."""
    lineage.write(adapter_dir)
    card = write_model_card(adapter_dir, lineage, release.hub)
    reporting.markdown(
        "lineage", lineage.to_markdown(), "Lineage: sources, filter, labels, cost, training, evaluation, release"
    )
    return card
