"""How a label is shown to the person judging it: its overlay as the gallery draws it, and its text.

The overlays are PNGs in <data-dir>/audit/; the Prefect artifact carries a small JPEG of each inline
(a data URL), so a browser on any machine shows them without reaching this one.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from motioncoach.audit.sample import Candidate
from motioncoach.overlay import OVERLAY_HEIGHT, draw_overlay
from motioncoach.records import PoseSample

AUDIT_DIR = "audit"
THUMBNAIL_HEIGHT = 320


@dataclass(frozen=True)
class Shown:
    """A label as a reviewer sees it: the candidate, the pose its overlay is drawn over, the overlay."""

    candidate: Candidate
    sample: PoseSample
    overlay: Path


def label_text(candidate: Candidate) -> list[str]:
    """The label as a reviewer reads it: the verdict line, then one line per correction, major first."""
    label = candidate.label
    if label.abstained:
        return [f"abstains: {label.error_message}"]
    lines = [f"score {label.progress_score}: {label.positive_note}"]
    if not label.feedback_points:
        lines.append("no correction: the teacher finds the form good")
    for number, point in enumerate(label.feedback_points, start=1):
        lines.append(f"{number}. {point.severity}: {point.coaching_script}")
        if point.positive_note:
            lines.append(f"   good: {point.positive_note}")
    return lines


def title(candidate: Candidate) -> str:
    return f"{candidate.short_id} · {candidate.activity} · {candidate.labeler} ({candidate.model_id})"


def draw(candidate: Candidate, sample: PoseSample, photo: Path, data_dir: Path) -> Shown:
    """<data-dir>/audit/<short id>.png: the photo, its keypoints, the label's vectors and captions."""
    folder = Path(data_dir) / AUDIT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{candidate.short_id}.png"
    with Image.open(photo) as image:
        draw_overlay(image.convert("RGB"), candidate.label, sample, title=title(candidate)).save(path)
    return Shown(candidate, sample, path)


def thumbnail_url(overlay: Path) -> str:
    """The overlay's photo part (its caption is in the text), small, as a JPEG data URL."""
    with Image.open(overlay) as image:
        photo = image.convert("RGB").crop((0, 0, image.width, min(image.height, OVERLAY_HEIGHT)))
    photo.thumbnail((THUMBNAIL_HEIGHT * 3, THUMBNAIL_HEIGHT))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def audit_markdown(shown: Sequence[Shown], how_to_answer: str) -> str:
    """The label-audit artifact: how to answer, then each label with its overlay and text."""
    parts = [
        f"## {len(shown)} labels to judge\n",
        how_to_answer,
        "\nFor each id: **approve** when a coach would sign the label; **reject**, saying why, when it is wrong. "
        "A rejected label never reaches training or validation: its image is relabeled by the nightly relabel "
        "(then: relabel) or leaves the dataset (then: drop).\n",
    ]
    for item in shown:
        candidate = item.candidate
        text = "\n".join(f"- {line.strip()}" for line in label_text(candidate))
        parts.append(
            f"### `{candidate.short_id}` {candidate.activity}\n\n"
            f"![{candidate.short_id}]({thumbnail_url(item.overlay)})\n\n"
            f"{candidate.labeler} ({candidate.model_id}); overlay `{AUDIT_DIR}/{item.overlay.name}` in the data "
            f"dir\n\n{text}\n"
        )
    return "\n".join(parts)


def terminal_text(item: Shown | Candidate, number: int, total: int) -> str:
    """One label as `motioncoach audit` prints it."""
    candidate = item.candidate if isinstance(item, Shown) else item
    where = f"overlay: {item.overlay}" if isinstance(item, Shown) else "overlay: (the photo is not on this machine)"
    lines = [f"[{number}/{total}] {title(candidate)}", where, *(f"  {line}" for line in label_text(candidate))]
    return "\n".join(lines)


def show(pending: Sequence[Candidate], data_dir: Path) -> tuple[list[Shown], list[Candidate]]:
    """The pending labels drawn over their dataset rows' photos and poses; those whose photo or row is not
    here come back apart (shown as text)."""
    from motioncoach.dataset import DATASET_FILE, read_jsonl
    from motioncoach.evaluation.items import rows_to_items

    path = Path(data_dir) / DATASET_FILE
    wanted = {c.sha256 for c in pending}
    rows = [r for r in read_jsonl(path) if Path(r["images"][0]).stem in wanted] if path.is_file() else []
    items, _ = rows_to_items(rows, data_dir)
    found = {item.sample.sha256: item for item in items if item.image.is_file()}
    shown = [draw(c, found[c.sha256].sample, found[c.sha256].image, data_dir) for c in pending if c.sha256 in found]
    return shown, [c for c in pending if c.sha256 not in found]
