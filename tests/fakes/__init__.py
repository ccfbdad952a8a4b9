"""Fake paid teachers that speak the real protocols on 127.0.0.1, so the real SDKs run in tests."""

from tests.fakes.gemini import GeminiFake
from tests.fakes.openrouter import OpenRouterFake
from tests.fakes.server import FAULTS, TRANSIENT_FAULTS, Call, grounded_label, parse_keypoints

__all__ = ["FAULTS", "TRANSIENT_FAULTS", "Call", "GeminiFake", "OpenRouterFake", "grounded_label", "parse_keypoints"]
