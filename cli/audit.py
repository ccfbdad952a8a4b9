"""`motioncoach audit`: people judge the teacher's labels in a terminal, or record verdicts from a file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from motioncoach.config import Profile
from motioncoach.errors import MotionCoachError

DEFAULT_SAMPLE = 30


def audit(
    data_dir: Annotated[Path, typer.Option(help="The data dir whose labels are judged.")] = Path("./data"),
    sample: Annotated[
        int, typer.Option(min=1, help="Labels in the audit sample (stratified by activity), judged ones included.")
    ] = DEFAULT_SAMPLE,
    verdicts: Annotated[
        Path | None,
        typer.Option(
            help='Record these verdicts without asking: JSON lines {"id": sha256 or short id, "verdict": "approve" '
            '| "reject", "reason": "...", "then": "relabel" | "drop"} ("-" reads standard input).',
            show_default=False,
        ),
    ] = None,
    profile: Annotated[
        Profile, typer.Option(help="modal: the data dir's photos and verdicts are on the Modal volume too.")
    ] = Profile.local,
    rehearse_volume: Annotated[
        Path | None, typer.Option(help="With --profile modal: the rehearsal volume.", show_default=False)
    ] = None,
) -> None:
    """Judge the audit sample's labels (approve, or reject saying why): rejected labels never train."""
    from motioncoach.audit import AuditBook, candidates_in, pending, summarize_audit, verdicts_from_entries
    from motioncoach.audit.verdicts import parse_verdict_lines, reviewer

    try:
        if rehearse_volume is not None:
            from remote.rehearsal import rehearse_on

            rehearse_on(rehearse_volume)
        data = data_dir.expanduser().resolve()
        if profile is Profile.modal:
            _sync_from_volume(data)
        candidates = candidates_in(data)
        if not candidates:
            raise MotionCoachError(
                f"{data}/labels.jsonl holds no label to judge: run `motioncoach dataset --data-dir {data_dir}` first"
            )
        book = AuditBook.read(data)
        if verdicts is not None:
            text = sys.stdin.read() if str(verdicts) == "-" else verdicts.read_text(encoding="utf-8")
            entries = parse_verdict_lines(text, "standard input" if str(verdicts) == "-" else str(verdicts))
            recorded = verdicts_from_entries(entries, candidates, reviewer())
            book.record(data, recorded)
            typer.echo(f"recorded {len(recorded)} verdicts in {data / 'audit.jsonl'}", err=True)
        else:
            _ask(pending(candidates, sample, book), data, book, profile)
        if profile is Profile.modal:
            _sync_to_volume(data)
    except (MotionCoachError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(summarize_audit(candidates, AuditBook.read(data)).describe(), err=True)


def _ask(todo, data: Path, book, profile: Profile) -> None:
    """Each pending label in turn; every answer is on disk before the next question."""
    from motioncoach.audit.review import verdicts_from_entries
    from motioncoach.audit.sheet import show, terminal_text
    from motioncoach.audit.verdicts import reviewer

    if not todo:
        typer.echo("every label of the sample has a verdict", err=True)
        return
    if profile is Profile.modal:
        from remote import client, steps

        steps.fetch_dataset_photos(client.connect(data), [c.sha256 for c in todo], data)
    shown, unshown = show(todo, data)
    items = [*shown, *unshown]
    who = reviewer()
    for number, item in enumerate(items, start=1):
        typer.echo("\n" + terminal_text(item, number, len(items)))
        answer = typer.prompt("approve, reject, skip or quit", default="skip").strip().lower()
        if answer in ("q", "quit"):
            break
        if answer not in ("a", "approve", "r", "reject"):
            continue
        entry = {"id": (item.candidate if hasattr(item, "candidate") else item).sha256, "verdict": "approve"}
        if answer in ("r", "reject"):
            reason = ""
            while not reason:
                reason = typer.prompt("what is wrong with it").strip()
            then = typer.prompt("relabel or drop", default="relabel").strip().lower()
            entry |= {"verdict": "reject", "reason": reason, "then": "drop" if then.startswith("d") else "relabel"}
        book.record(data, verdicts_from_entries([entry], todo, who))


def _sync_from_volume(data: Path) -> None:
    from remote import client, steps

    steps.fetch_audit_book(client.connect(data), data)


def _sync_to_volume(data: Path) -> None:
    from remote import client, steps

    if (data / "audit.jsonl").is_file():
        steps.put_audit_book(client.connect(data), data)
