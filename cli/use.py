"""Using the fine-tuned model: `motioncoach coach`, `serve` and `merge`.

They run no Prefect flow; they load what a run released (a LoRA adapter with its base model, merged
weights, or a Hub repo of either) and go through motioncoach.serving, the path the evaluation measures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from motioncoach.config import Profile
from motioncoach.errors import MotionCoachError

AdapterOption = Annotated[
    str,
    typer.Option(
        help="The model: a LoRA adapter directory (its base model is the one it was trained on), a merged model "
        "directory, or a Hub repo id of either."
    ),
]
BaseModelOption = Annotated[
    str | None, typer.Option(help="The adapter's base model (directory or Hub id), when not the one it records.")
]
MaxNewTokensOption = Annotated[int, typer.Option(min=1, help="Tokens each answer may use (a full label is ~600).")]
PoseWeightsOption = Annotated[
    str | None,
    typer.Option(
        help="YOLO pose weights (default: those the release's dataset was filtered with, as its lineage says).",
        show_default=False,
    ),
]
MaxPixelsOption = Annotated[
    int | None,
    typer.Option(
        min=1, help="Pixels photos are shown at (default: the release's training MAX_PIXELS).", show_default=False
    ),
]


def register(app: typer.Typer) -> None:
    app.command()(coach)
    app.command()(serve)
    app.command()(merge)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _say(notes: list[str]) -> None:
    for note in notes:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW, err=True)


def _local_coach(adapter: str, base_model: str | None, max_new_tokens: int, batch_size: int,
                 pose_weights: str | None, max_pixels: int | None):  # fmt: skip
    """The coach over the transformers backend, on this machine, with the release's pixels and pose model."""
    from motioncoach.config import PoseFilterConfig
    from motioncoach.serving.backends import TransformersBackend
    from motioncoach.serving.coach import Coach
    from motioncoach.serving.models import choose_model
    from motioncoach.serving.release import serving_settings

    choice = choose_model(adapter, base_model)
    settings = serving_settings([choice.adapter, Path(choice.model)], max_pixels=max_pixels, pose_weights=pose_weights)
    _say(settings.notes)
    backend = TransformersBackend(
        choice.model, choice.adapter, max_new_tokens=max_new_tokens, batch_size=batch_size, name="transformers"
    )
    return Coach(backend, settings.max_pixels, PoseFilterConfig(weights=settings.pose_weights)), choice.label


def coach(
    photos: Annotated[list[Path], typer.Argument(help="Photos to coach (JPEG, PNG, ...).", show_default=False)],
    adapter: AdapterOption = "./lora-adapter",
    base_model: BaseModelOption = None,
    activity: Annotated[
        str | None, typer.Option(help="The activity the photos show (default: each photo's folder name).")
    ] = None,
    overlay_dir: Annotated[
        Path | None,
        typer.Option(help="Write a PNG per photo: keypoints, Current (red) and Target (green) arrows, the feedback."),
    ] = None,
    max_new_tokens: MaxNewTokensOption = 1024,
    batch_size: Annotated[int, typer.Option(min=1, help="Photos per model call.")] = 4,
    pose_weights: PoseWeightsOption = None,
    max_pixels: MaxPixelsOption = None,
) -> None:
    """Coach photos: one AnalysisResponse JSON object per photo per line, in order, on stdout."""
    from motioncoach.serving.coach import CoachRequest
    from motioncoach.serving.photo import PhotoError, read_photo

    requests, unreadable = [], 0
    for path in photos:
        try:
            photo = read_photo(path.read_bytes(), str(path))
        except FileNotFoundError:
            typer.echo(f"error: {path}: no such file", err=True)
        except IsADirectoryError:
            typer.echo(f"error: {path}: a directory, not a photo", err=True)
        except (PhotoError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
        else:
            requests.append(CoachRequest(photo=photo, activity=activity or path.resolve().parent.name))
            continue
        unreadable += 1
    if not requests:
        raise typer.Exit(1)
    try:
        model, _ = _local_coach(adapter, base_model, max_new_tokens, batch_size, pose_weights, max_pixels)
    except MotionCoachError as exc:
        raise _fail(str(exc)) from None
    results = model.coach(requests)
    for result in results:
        typer.echo(json.dumps(result.response.model_dump(mode="json")))
    if overlay_dir is not None:
        _write_overlays(results, overlay_dir)
    if unreadable:
        raise typer.Exit(1)


def _write_overlays(results, overlay_dir: Path) -> None:
    from motioncoach.overlay import draw_overlay

    overlay_dir.mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    for number, result in enumerate(results, start=1):
        photo, response = result.request.photo, result.response
        stem = Path(photo.name).stem
        name = f"{stem}.png" if f"{stem}.png" not in names else f"{stem}-{number}.png"
        names.add(name)
        title = f"{Path(photo.name).name} ({result.request.activity})"
        if response.status != "success":
            title += f": {response.status}: {response.error_message}"
        sample = result.sample or _no_pose(photo, result.request.activity)
        label = result.answer.label if result.answer else None
        draw_overlay(photo.image(), label, sample, title=title).save(overlay_dir / name)


def _no_pose(photo, activity: str):
    from motioncoach.records import KEYPOINT_NAMES, Keypoint, PoseSample

    return PoseSample(
        sha256=photo.sha256, source_path=Path(photo.name), activity=activity, width=photo.width,
        height=photo.height, box_conf=0.0, keypoints=tuple(Keypoint(name=n, x=0, y=0, conf=0) for n in KEYPOINT_NAMES),
    )  # fmt: skip


RehearseOption = Annotated[
    Path | None,
    typer.Option(
        help="With --profile modal: rehearse for free on this folder standing in for the volume (the endpoint "
        "runs here, the model in transformers).",
        show_default=False,
    ),
]


def serve(
    adapter: AdapterOption = "./lora-adapter",
    base_model: BaseModelOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    max_new_tokens: MaxNewTokensOption = 1024,
    batch_size: Annotated[int, typer.Option(min=1, help="Requests coached in one model call.")] = 8,
    pose_weights: PoseWeightsOption = None,
    max_pixels: MaxPixelsOption = None,
    openai_upstream: Annotated[
        str | None,
        typer.Option(
            help="Coach with the model of this OpenAI-compatible server (vLLM, `swift deploy`), e.g. "
            "http://127.0.0.1:8001, and expose its /v1 API too. Its key: MOTIONCOACH_SERVE_UPSTREAM_KEY.",
            show_default=False,
        ),
    ] = None,
    upstream_model: Annotated[
        str | None, typer.Option(help="The upstream's model name (default: the one it lists).", show_default=False)
    ] = None,
    profile: Annotated[
        Profile, typer.Option(help="local: serve here; modal: choose the release the Modal endpoint serves.")
    ] = Profile.local,
    data_dir: Annotated[Path, typer.Option(help="With --profile modal: the data dir the release was made in.")] = Path(
        "./data"
    ),
    rehearse_volume: RehearseOption = None,
) -> None:
    """Serve the coach over HTTP: the app's POST / (multipart, as the app sends it), POST /v1/coach
    {"image": base64, "activity": "squat"}, GET /health, GET /metrics.

    With MOTIONCOACH_SERVE_TOKEN set, every route but /health needs `Authorization: Bearer <token>`. With
    --openai-upstream the model answers from that server, whose OpenAI API is served under /v1 as well (the
    Modal endpoint's own mode). With --profile modal the release is served by the deployed app's endpoint (vLLM
    on one H200, scaling to zero): this command chooses it, prints the URL and waits until the endpoint serves it.
    """
    import uvicorn

    if profile is Profile.modal:
        return _serve_on_modal(adapter, data_dir, pose_weights, rehearse_volume, host, port)
    from motioncoach.serving.http import create_app
    from motioncoach.serving.settings import ServeSettings

    secrets = ServeSettings()
    try:
        if openai_upstream is None:
            model, release = _local_coach(adapter, base_model, max_new_tokens, batch_size, pose_weights, max_pixels)
            app = create_app(model, release=release, max_batch=batch_size, token=secrets.secret("token"))
        else:
            app, release = _upstream_app(openai_upstream, upstream_model, adapter, secrets, max_new_tokens, batch_size,
                                         pose_weights, max_pixels)  # fmt: skip
    except MotionCoachError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"serving {release} on http://{host}:{port} (POST /, POST /v1/coach, GET /health)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


def _upstream_app(url: str, model: str | None, adapter: str, secrets, max_new_tokens: int, batch_size: int,
                  pose_weights: str | None, max_pixels: int | None):  # fmt: skip
    """The coach in front of an OpenAI-compatible server; the release's pixels and pose model from --adapter's
    folder when it is here (the served weights may be elsewhere), else said to be the recipe's."""
    from motioncoach.config import PoseFilterConfig
    from motioncoach.serving.backends import OpenAIChatBackend, served_model_id
    from motioncoach.serving.coach import Coach
    from motioncoach.serving.http import REQUEST_DEADLINE_S, create_app
    from motioncoach.serving.release import serving_settings

    root = url.rstrip("/").removesuffix("/v1")
    key = secrets.secret("upstream_key")
    model = model or served_model_id(f"{root}/v1", key)
    folder = Path(adapter).expanduser()
    settings = serving_settings([folder] if folder.is_dir() else [], max_pixels=max_pixels, pose_weights=pose_weights)
    _say(settings.notes)
    backend = OpenAIChatBackend(
        f"{root}/v1", model, max_tokens=max_new_tokens, api_key=key, concurrency=batch_size,
        timeout_s=REQUEST_DEADLINE_S - 30, name=f"{model} at {root}",
    )  # fmt: skip
    coach = Coach(backend, settings.max_pixels, PoseFilterConfig(weights=settings.pose_weights))
    release = f"{model} at {root}"
    app = create_app(coach, release=release, max_batch=batch_size, workers=4, token=secrets.secret("token"),
                     upstream=root, upstream_key=key)  # fmt: skip
    return app, release


def _serve_on_modal(
    adapter: str, data_dir: Path, pose_weights: str | None, rehearse: Path | None, host: str, port: int
):
    from motioncoach.serving.release import recorded_pose
    from motioncoach.serving.wake import wait_until_serving
    from remote import client, serving

    _rehearse(rehearse)
    folder = Path(adapter).expanduser()
    recorded = (recorded_pose([folder]) or {}).get("weights") if folder.is_dir() else None
    if pose_weights and recorded and Path(pose_weights).name != recorded:
        _say([f"--pose-weights {pose_weights}: the release's dataset was filtered with {recorded}"])
    try:
        config = serving.serving_config(adapter, pose_weights=pose_weights or recorded or "yolo26x-pose.pt")
        client.check_modal_ready(data_dir)
        remote = client.connect(data_dir)
        serving.choose_release(remote, config)
        if rehearse is not None:  # the endpoint's own start, on this machine
            import uvicorn

            from motioncoach.serving.endpoint import start_endpoint

            endpoint = start_endpoint(rehearse / serving.SERVING_FILE, rehearse, rehearsal=True)
            typer.echo(f"rehearsing the endpoint serving {config.model} on http://{host}:{port}", err=True)
            uvicorn.run(endpoint.app, host=host, port=port, log_level="info")
            return
        url = serving.endpoint_url(remote)
        headers = _endpoint_headers()
    except MotionCoachError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"the endpoint serves {config.model} from its next container start: {url}", err=True)
    try:
        seconds = wait_until_serving(url, config.release, headers, limit_s=serving.COLD_START_LIMIT_S)
    except MotionCoachError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"cold start: {seconds:.0f} s until /health reported {config.release}", err=True)
    typer.echo(url)


def _endpoint_headers() -> dict[str, str]:
    """The endpoint's token (MOTIONCOACH_SERVE_TOKEN), the same as in its secret motioncoach-serve-secret."""
    from motioncoach.serving.settings import ServeSettings

    token = ServeSettings().secret("token")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _rehearse(folder: Path | None) -> None:
    if folder is not None:
        from remote.rehearsal import rehearse_on

        rehearse_on(folder)


def merge(
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where the merged model is written (--profile modal: merged/<run> on the volume).", show_default=False
        ),
    ] = None,
    adapter: AdapterOption = "./lora-adapter",
    base_model: BaseModelOption = None,
    dtype: Annotated[str, typer.Option(help="'auto' keeps the checkpoint's dtype; 'float32' merges in full.")] = "auto",
    max_pixels: MaxPixelsOption = None,
    profile: Annotated[Profile, typer.Option(help="local: merge here; modal: on the volume.")] = Profile.local,
    rehearse_volume: RehearseOption = None,
) -> None:
    """Fold the LoRA adapter into its base model: one Qwen3-VL that transformers and vLLM load whole."""
    from motioncoach.serving.merge import merge_adapter

    if profile is Profile.modal:
        return _merge_on_modal(adapter, rehearse_volume, max_pixels)
    if out is None:
        raise _fail("--out is needed: the directory the merged model is written to")
    from motioncoach.serving.models import choose_model

    try:
        choice = choose_model(adapter, base_model)
        if choice.adapter is None:
            raise MotionCoachError(f"--adapter {adapter} is already a whole model: there is nothing to merge")
        record = merge_adapter(choice.model, choice.adapter, out, dtype=dtype, max_pixels=max_pixels)
    except MotionCoachError as exc:
        raise _fail(str(exc)) from None
    placement = record.placement
    mergers = placement.merger + placement.deepstack_mergers
    typer.echo(
        f"merged {choice.adapter} into {choice.model}: {out} ({placement.language_model} LoRA modules on the "
        f"language model, {placement.vision_tower} on the vision tower, {mergers} on the mergers); its processor "
        f"resizes photos to at most {record.max_pixels} pixels, as training did",
        err=True,
    )


def _merge_on_modal(adapter: str, rehearse: Path | None, max_pixels: int | None) -> None:
    """The release of a modal-profile run merged where its weights are: on the volume."""
    from motioncoach.modal_release import read_modal_adapter
    from remote import client, steps

    _rehearse(rehearse)
    folder = Path(adapter).expanduser()
    record = read_modal_adapter(folder)
    if record is None:
        raise _fail(f"--adapter {adapter} was not released by the modal profile (no modal-adapter.json)")
    try:
        remote = client.connect(Path(record["data_dir"]))
        client.check_deployed_version(remote)
        merged = steps.merge_on_volume(remote, folder, max_pixels)
    except MotionCoachError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"merged on the volume: {merged['path']} ({merged['bytes'] / 1e9:.1f} GB)", err=True)
