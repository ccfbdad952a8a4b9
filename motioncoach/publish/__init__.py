"""Telling users what they get: the lineage record, the model and dataset cards, Hub uploads.

Every module imports cheaply; huggingface_hub and jinja2 load inside functions.
"""

from motioncoach.hub import HubSettings, hub_reachable
from motioncoach.publish.card import CARD_FILE, dataset_card, model_card, write_model_card
from motioncoach.publish.config import HubConfig, ReleaseConfig, ReleaseSettings, with_release_flags
from motioncoach.publish.dataset_export import stage_dataset
from motioncoach.publish.hub import (
    HubError,
    HubStatus,
    check_hub_settings,
    check_write_access,
    plan_adapter_upload,
    upload_adapter_folder,
    upload_folder,
    upload_merged_folder,
    whoami,
)
from motioncoach.publish.lineage import LINEAGE_FILE, Lineage, build_lineage

__all__ = [
    "CARD_FILE",
    "LINEAGE_FILE",
    "HubConfig",
    "HubError",
    "HubSettings",
    "HubStatus",
    "Lineage",
    "ReleaseConfig",
    "ReleaseSettings",
    "build_lineage",
    "check_hub_settings",
    "check_write_access",
    "hub_reachable",
    "dataset_card",
    "model_card",
    "plan_adapter_upload",
    "stage_dataset",
    "upload_adapter_folder",
    "upload_folder",
    "upload_merged_folder",
    "whoami",
    "with_release_flags",
    "write_model_card",
]
