"""Pose filtering: keep photos showing exactly one well-detected person, cached by content."""

from motioncoach.pose.cache import CACHE_FILE_NAME, CacheEntry, PoseCache, cache_key
from motioncoach.pose.filter import PoseFilterReport, Rejection, filter_poses
from motioncoach.pose.image_check import DecodedImage, check_image
from motioncoach.pose.weights import (
    WeightsError,
    configure_ultralytics,
    resolve_weights,
    shipped_weights,
    weights_sha256,
)

__all__ = [
    "CACHE_FILE_NAME",
    "CacheEntry",
    "DecodedImage",
    "PoseCache",
    "PoseFilterReport",
    "Rejection",
    "WeightsError",
    "cache_key",
    "check_image",
    "configure_ultralytics",
    "filter_poses",
    "resolve_weights",
    "shipped_weights",
    "weights_sha256",
]
