"""Answers kept as they come: an evaluation stopped half-way (a timeout, a lost container) continues
where it stopped instead of asking every model every row again.

One JSON line per answer, after a first line naming what the answers belong to (the validation file,
the evaluation settings and each model's weights): a log made for anything else is started afresh.
"""

from __future__ import annotations

import json
from pathlib import Path

LOG_FILE = "eval_answers.partial.jsonl"


class AnswerLog:
    """model -> row key -> answer text, appended to a file as answers arrive."""

    def __init__(self, path: Path, identity: dict):
        self.path, self.identity = Path(path), identity
        self.answers: dict[str, dict[str, str]] = {}
        lines = self.path.read_text().splitlines() if self.path.is_file() else []
        if lines and _load(lines[0]) == {"identity": identity}:
            for line in lines[1:]:
                entry = _load(line)
                if entry and {"model", "key", "text"} <= entry.keys():
                    self.answers.setdefault(entry["model"], {})[entry["key"]] = entry["text"]
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"identity": identity}) + "\n")

    def known(self, model: str) -> dict[str, str]:
        return self.answers.setdefault(model, {})

    def add(self, model: str, answers: dict[str, str]) -> None:
        with open(self.path, "a") as log:
            for key, text in answers.items():
                log.write(json.dumps({"model": model, "key": key, "text": text}) + "\n")
        self.known(model).update(answers)


def _load(line: str) -> dict | None:
    try:
        value = json.loads(line)
    except ValueError:  # a line cut short by a crash
        return None
    return value if isinstance(value, dict) else None
