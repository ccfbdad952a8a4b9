"""Image sources: the offline samples, a local folder, or Kaggle datasets."""

from motioncoach.sources.resolve import collect_images, source_kind

__all__ = ["collect_images", "source_kind"]
