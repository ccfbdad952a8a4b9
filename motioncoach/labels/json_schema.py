"""The JSON Schema of what the app receives (`AnalysisResponse`), for the app to validate against.

uv run python -m motioncoach.labels.json_schema            # rewrites schemas/analysis_response.schema.json
uv run python -m motioncoach.labels.json_schema --check    # exits 1 when the committed file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from motioncoach.labels.response import AnalysisResponse
from motioncoach.labels.schema import SCHEMA_VERSION

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "analysis_response.schema.json"


def analysis_response_schema() -> dict:
    """AnalysisResponse as JSON Schema (draft 2020-12), as the model serializes it."""
    schema = AnalysisResponse.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"MotionCoach label schema {SCHEMA_VERSION}; written by `python -m motioncoach.labels.json_schema`",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(analysis_response_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=SCHEMA_FILE, help="Where to write the schema.")
    parser.add_argument("--check", action="store_true", help="Only compare; exit 1 when the file differs.")
    args = parser.parse_args(argv)
    text = schema_text()
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.is_file() else ""
        if current != text:
            print(f"{args.path} is out of date: run `uv run python -m motioncoach.labels.json_schema`", file=sys.stderr)
            return 1
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
