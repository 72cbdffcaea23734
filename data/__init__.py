"""The data listing: what a split holds, in every format, and which of its files are usable.

Formats: ImageFolder (:mod:`~dalinorm.data.imagefolder`), DALI file lists
(:mod:`~dalinorm.data.file_list`) and webdataset packs (:mod:`~dalinorm.data.packs`, written by
:mod:`~dalinorm.data.pack_writer`, indexed by :mod:`~dalinorm.data.tar_index`). This room knows
nothing of DALI graphs: it lists files, reads their bytes, fingerprints them and splits them
into rank blocks.
"""

from dalinorm.data.listing import (
    IMAGE_EXTENSIONS,
    ImageSource,
    SplitListing,
    TarShard,
    fingerprint_of,
)
from dalinorm.data.splits import list_split, read_checked_list

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageSource",
    "SplitListing",
    "TarShard",
    "fingerprint_of",
    "list_split",
    "read_checked_list",
]
