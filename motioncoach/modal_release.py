"""A release the modal profile made: its weights stayed on the volume, and `modal-adapter.json` in the
adapter folder says where (the packaged adapter, its base model, the merged release once folded).

The modal client writes it; the lineage, `coach`/`serve` and the endpoint's chooser read it.
"""

from __future__ import annotations

import json
from pathlib import Path

MODAL_ADAPTER_FILE = "modal-adapter.json"


def read_modal_adapter(adapter_dir: Path) -> dict | None:
    """The record in adapter_dir, or None for a release made here (or an unreadable record)."""
    try:
        return json.loads((Path(adapter_dir) / MODAL_ADAPTER_FILE).read_text())
    except (OSError, ValueError):
        return None
