"""Building a teacher request: the downscaled image, the grounded prompt, the answer schema."""

from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path

from PIL import Image, ImageOps

from motioncoach.dataset.prompt import pose_block
from motioncoach.hashing import text_sha256
from motioncoach.labels.schema import CoachingLabel
from motioncoach.labels.targets import coaching_cues
from motioncoach.prompts import system_prompt, teacher_template
from motioncoach.records import PoseSample
from motioncoach.teachers.base import TeacherRequest

MAX_SIDE = 768
JPEG_QUALITY = 90
# How a photo is sent: part of what is asked, so a change to it asks again (after the rebuy guard says so).
ENCODING = f"upright RGB JPEG, quality {JPEG_QUALITY}, at most {MAX_SIDE} px a side"


def encode_image(path: Path, max_side: int = MAX_SIDE) -> bytes:
    """Upright, RGB, at most max_side pixels on its longer side, JPEG: the same bytes every time."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False, subsampling=2)
    return buffer.getvalue()


def teacher_prompt(sample: PoseSample) -> str:
    return teacher_template().format(
        activity=sample.activity,
        width=sample.width,
        height=sample.height,
        pose=pose_block(sample),
        cues=coaching_cues(sample.activity),
    )


@cache
def asked_version() -> str:
    """What every request asks alike, as a short hash: the prompts, the answer schema and the image encoding.
    A label asked under another version is stale."""
    schema = json.dumps(label_json_schema(), sort_keys=True)
    return text_sha256("\x00".join((system_prompt(), teacher_template(), schema, ENCODING)))[:12]


def request_digest(sample: PoseSample) -> str:
    """This image's own question: its activity, size, pose block and cues, as the user turn holds them."""
    return text_sha256(teacher_prompt(sample))[:16]


def build_request(sample: PoseSample) -> TeacherRequest:
    """Pure: the same sample always gives the same request."""
    return TeacherRequest(
        sha256=sample.sha256,
        image_jpeg=encode_image(sample.source_path),
        system=system_prompt(),
        prompt=teacher_prompt(sample),
        response_schema=label_json_schema(),
    )


# The JSON-Schema keywords Gemini documents for response_json_schema (ai.google.dev/gemini-api/docs/
# structured-output). Others (const, minLength, default) are rewritten or left out of what is sent;
# the answer is still validated against the full pydantic schema.
SCHEMA_KEYWORDS = frozenset(
    {
        "type", "title", "description", "properties", "required", "additionalProperties", "enum", "format",
        "minimum", "maximum", "items", "prefixItems", "minItems", "maxItems", "anyOf", "$ref", "$defs",
    }
)  # fmt: skip


@cache
def label_json_schema() -> dict:
    """The label schema as plain JSON schema in the subset Gemini documents: references inlined,
    a single allowed value as a one-item enum, descriptions kept (they guide the model).

    Structured-output endpoints accept different subsets of JSON schema; a self-contained schema
    without $defs is the subset both Gemini and OpenRouter's providers take.
    """
    schema = CoachingLabel.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[1]])
            if "const" in node:
                node = {**{k: v for k, v in node.items() if k != "const"}, "enum": [node["const"]]}
            kept = {}
            for key, value in node.items():
                if key == "properties":
                    kept[key] = {name: inline(child) for name, child in value.items()}
                elif key in SCHEMA_KEYWORDS and key != "title":
                    kept[key] = inline(value)
            return kept
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    inlined = inline(schema)
    return _close_objects(inlined)


def _close_objects(node):
    """additionalProperties false and every property required, as strict structured output wants."""
    if isinstance(node, dict):
        node = {k: _close_objects(v) for k, v in node.items()}
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
            node["required"] = list(node["properties"])
        return node
    if isinstance(node, list):
        return [_close_objects(v) for v in node]
    return node
