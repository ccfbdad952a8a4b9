"""A human-labelled benchmark: a folder with benchmark.jsonl and its images.

Each line is one item: `id`, `image` (a path inside the folder), `activity`, `source` (who labelled it),
and either `choices` (2-6 expert comments) with `answer` (the index of the right one, from 0), or
`form_ok` (true when an expert judged the form correct) with an optional `comment`. A `suite.json`
beside it may name the suite, where it comes from and its license; a report carries them.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, model_validator

from motioncoach.dataset.rows import write_jsonl
from motioncoach.errors import ConfigurationError

SUITE_FILE = "benchmark.jsonl"
META_FILE = "suite.json"
MIN_CHOICES, MAX_CHOICES = 2, 6


class BenchmarkItem(BaseModel):
    """One question people already answered: which expert comment fits, or whether the form is correct."""

    id: str = Field(min_length=1)
    image: str = Field(min_length=1, description="A path inside the suite's folder.")
    activity: str = Field(min_length=1)
    source: str = Field(min_length=1, description="Who labelled it (an expert panel, a dataset's annotators).")
    choices: list[str] | None = Field(None, description="Expert comments, one of them right.")
    answer: int | None = Field(None, ge=0, description="The index of the right comment in choices.")
    form_ok: bool | None = Field(None, description="True when an expert judged the form correct.")
    comment: str | None = Field(None, description="What the expert said, for people reading the results.")

    @model_validator(mode="after")
    def _one_kind(self) -> BenchmarkItem:
        if (self.choices is None) == (self.form_ok is None):
            raise ValueError("an item has either choices (with answer) or form_ok, not both and not neither")
        if self.choices is not None:
            if not MIN_CHOICES <= len(self.choices) <= MAX_CHOICES or not all(c.strip() for c in self.choices):
                raise ValueError(f"choices must be {MIN_CHOICES} to {MAX_CHOICES} non-empty comments")
            if self.answer is None or self.answer >= len(self.choices):
                raise ValueError(f"answer must be the index of one of the {len(self.choices)} choices")
        elif self.answer is not None:
            raise ValueError("answer goes with choices")
        return self

    @property
    def kind(self) -> str:
        return "mcq" if self.choices is not None else "form_ok"


class SuiteInfo(BaseModel):
    """suite.json: what the suite is and under which terms its items may be used."""

    name: str
    source: str = ""
    license: str = Field("", description="The terms of the labels and of the images (both, when they differ).")
    notes: str = ""


class Suite(BaseModel):
    """A loaded benchmark: its folder, what it is, and its items."""

    root: Path
    info: SuiteInfo
    items: list[BenchmarkItem]

    @property
    def name(self) -> str:
        return self.info.name

    def image_path(self, item: BenchmarkItem) -> Path:
        return self.root / item.image

    def counts(self) -> dict[str, int]:
        return {
            "mcq": sum(i.kind == "mcq" for i in self.items),
            "form_ok": sum(i.kind == "form_ok" for i in self.items),
        }


def load_suite(folder: Path) -> Suite:
    """Read and check a benchmark folder; every bad line is named at once."""
    folder = Path(folder).expanduser().resolve()
    path = folder / SUITE_FILE
    if not path.is_file():
        raise ConfigurationError(
            f"{folder} is no benchmark: it has no {SUITE_FILE} (see the README's 'Benchmarks' for the format, or "
            "pass --form-ok-folder NAME for a folder of images sorted into one sub-folder per verdict)"
        )
    problems, items, seen = [], [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = BenchmarkItem.model_validate_json(line)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "".join(f"{p}: " for p in first["loc"])
            problems.append(f"line {number}: {where}{first['msg'].removeprefix('Value error, ')}")
            continue
        image = (folder / item.image).resolve()
        if folder not in image.parents:
            problems.append(f"line {number}: image {item.image!r} is not inside the suite's folder")
        elif not image.is_file():
            problems.append(f"line {number}: image {item.image!r} is missing")
        elif item.id in seen:
            problems.append(f"line {number}: id {item.id!r} is used twice")
        else:
            seen.add(item.id)
            items.append(item)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ConfigurationError(f"{path} has {len(problems)} bad line(s): {shown}")
    if not items:
        raise ConfigurationError(f"{path} holds no items")
    meta = folder / META_FILE
    info = SuiteInfo.model_validate_json(meta.read_text()) if meta.is_file() else SuiteInfo(name=folder.name)
    return Suite(root=folder, info=info, items=items)


def write_suite(folder: Path, items: list[BenchmarkItem], info: SuiteInfo) -> Suite:
    """Write benchmark.jsonl and suite.json into folder (its images already there); returns it loaded."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl((item.model_dump(mode="json", exclude_none=True) for item in items), folder / SUITE_FILE)
    (folder / META_FILE).write_text(json.dumps(info.model_dump(), indent=2) + "\n")
    return load_suite(folder)
