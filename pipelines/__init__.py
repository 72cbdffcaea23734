"""DALI graphs (train and eval) and what they read: the ImageFolder listing and the mean/std."""

from dalinorm.pipelines.files import DatasetError, SplitListing, list_image_folder
from dalinorm.pipelines.graphs import GraphSpec, build_eval_pipeline, build_train_pipeline
from dalinorm.pipelines.normalize import Normalization, resolve_normalization

# data.on_bad_file: skip without a checked list runs check-data's checks: this import registers
# them with the data listing (pipelines/files.py), which cannot import the room above it
from dalinorm.pipelines import checks as _checks  # noqa: F401,E402

__all__ = [
    "DatasetError",
    "GraphSpec",
    "Normalization",
    "SplitListing",
    "build_eval_pipeline",
    "build_train_pipeline",
    "list_image_folder",
    "resolve_normalization",
]
