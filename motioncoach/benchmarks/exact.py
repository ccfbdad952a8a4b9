"""ExAct (NeurIPS 2025) as a photo benchmark: expert comments on Ego-Exo4D takes, one frame per moment.

The Hub dataset repo (`Alexhimself/ExAct`) holds `data/metadata.jsonl` and one mp4 clip per line in
`data/`. Each line has the expert's comment (`groundTruth`), four distractors (`negative_comments`),
`is_ge` (a good execution, or a tip for improvement) and `video_time`, the moment the expert paused
the original take to comment. Only the physical-activity domains are kept (basketball, soccer,
bouldering, dance: a coach judges the body there; cooking, music, bike repair and health are left out).

Each kept line gives one frame, cut with PyAV at `video_time` when the clip is that long (it keeps
the take's timeline), else at the clip's last frame (a clip cut from the take ends where the expert
paused: ExAct's comments are retrospective). Two items share it: the multiple-choice question (the
comment among the five, in an order fixed by the item's id) and a form item (`form_ok` = `is_ge`).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from pathlib import Path

from motioncoach.benchmarks.suite import BenchmarkItem, Suite, SuiteInfo, write_suite
from motioncoach.errors import ConfigurationError

log = logging.getLogger(__name__)

EXACT_REPO = "Alexhimself/ExAct"
METADATA = "data/metadata.jsonl"
PHYSICAL_DOMAINS = ("basketball", "soccer", "bouldering", "rock_climbing", "rock climbing", "climbing", "dance")
LICENSE = (
    "ExAct's labels: Apache-2.0 (its README and dataset card). The frames are cut from Ego-Exo4D takes, whose "
    "license agreement (https://ego-exo4d-data.org) binds everyone who uses its footage: accept it first."
)
SOURCE = "ExAct (Yuan et al., NeurIPS 2025): expert commentary on Ego-Exo4D, hf.co/datasets/Alexhimself/ExAct"


def frame_at(video: Path, seconds: float) -> tuple[object, float, bool]:
    """The clip's frame at `seconds` (a PIL image), the time it shows, and whether the clip reached that time
    (False: its last frame, the clip being shorter)."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / av.time_base
        reached = seconds <= duration
        target = seconds if reached else duration
        if target > 0 and stream.time_base is not None:
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
        shown = None
        for frame in container.decode(stream):
            shown = frame
            if frame.time is not None and frame.time >= target:
                break
        if shown is None:
            raise ValueError(f"{video.name} holds no decodable video frame")
        return shown.to_image(), float(shown.time or 0.0), reached


def _choices(line: dict) -> tuple[list[str], int]:
    """The expert's comment among the distractors, in an order fixed by the item's id."""
    comments = [str(line["groundTruth"]), *(str(c) for c in line["negative_comments"])]
    order = list(range(len(comments)))
    random.Random(str(line["id"])).shuffle(order)
    return [comments[i] for i in order], order.index(0)


def kept(line: dict, domains: tuple[str, ...]) -> bool:
    return str(line.get("domain", "")).strip().lower() in domains


def build_exact_suite(
    out: Path,
    fetch: Callable[[str], Path],
    *,
    domains: tuple[str, ...] = PHYSICAL_DOMAINS,
    max_items: int | None = None,
) -> Suite:
    """Write the ExAct suite into `out`; fetch(path in the repo) -> a local copy of that file."""
    lines = [json.loads(t) for t in fetch(METADATA).read_text(encoding="utf-8").splitlines() if t.strip()]
    chosen = [line for line in lines if kept(line, domains)][:max_items]
    if not chosen:
        found = sorted({str(line.get("domain")) for line in lines})
        raise ConfigurationError(
            f"ExAct: no line of the domains {', '.join(domains)} (the repo has {', '.join(found)})"
        )
    images = Path(out) / "images"
    images.mkdir(parents=True, exist_ok=True)
    items, skipped = [], []
    for number, line in enumerate(chosen, start=1):
        item_id = str(line["id"])
        image = images / f"{item_id}.jpg"
        try:
            if not image.is_file():
                frame, shown, reached = frame_at(fetch(f"data/{line['file_name']}"), float(line["video_time"]))
                frame.convert("RGB").save(image, format="JPEG", quality=92)
                log.info("ExAct %d/%d: %s at %.2f s%s", number, len(chosen), item_id, shown,
                         "" if reached else " (the clip's last frame)")  # fmt: skip
        except (OSError, ValueError, KeyError) as exc:
            skipped.append(f"{item_id}: {exc}")
            continue
        choices, answer = _choices(line)
        source = f"ExAct expert ({line.get('take_name', 'Ego-Exo4D')}, {line.get('task_name', line['domain'])})"
        common = {"image": f"images/{image.name}", "activity": str(line["domain"]), "source": source}
        items.append(BenchmarkItem(id=item_id, choices=choices, answer=answer, comment=choices[answer], **common))
        items.append(
            BenchmarkItem(id=f"{item_id}-form", form_ok=bool(line["is_ge"]), comment=str(line["groundTruth"]), **common)
        )
    notes = f"{len(items) // 2} moments of {len(lines)} in the repo ({', '.join(domains)})"
    if skipped:
        notes += f"; {len(skipped)} clips could not be cut: " + "; ".join(skipped[:5])
    return write_suite(Path(out), items, SuiteInfo(name="exact", source=SOURCE, license=LICENSE, notes=notes))


def exact_from_hub(out: Path, *, repo_id: str = EXACT_REPO, revision: str | None = None, **options) -> Suite:
    """Download ExAct from the Hugging Face Hub (HF_ENDPOINT, HF_TOKEN as for every Hub call) into `out`."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    from motioncoach.hub import HubSettings, hub_reachable

    settings = HubSettings()
    token = settings.token.get_secret_value() if settings.token else None
    cache = Path(out) / ".hub-cache"

    def fetch(path: str) -> Path:
        try:
            with hub_reachable():
                return Path(
                    hf_hub_download(
                        repo_id, path, repo_type="dataset", revision=revision, cache_dir=cache, token=token,
                        endpoint=settings.endpoint,
                    )
                )  # fmt: skip
        except RepositoryNotFoundError:
            raise ConfigurationError(
                f"the dataset repo {repo_id} is not on {settings.endpoint} (or HF_TOKEN cannot read it)"
            ) from None
        except EntryNotFoundError:
            raise OSError(f"{path} is not in {repo_id}") from None
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "no answer"
            raise OSError(f"{path}: the Hub answered {status}") from None

    return build_exact_suite(Path(out), fetch, **options)
