"""The statistics pass: exact per-channel moments of the training split, the stats file, and
which mean/std a config's ``normalize`` section resolves to (the leak guard included)."""

from dalinorm.stats.compute import LeakError, compute_stats
from dalinorm.stats.file import (
    DatasetStats,
    StatsFileError,
    read_stats_file,
    write_stats_file,
)
from dalinorm.stats.moments import MomentsAccumulator
from dalinorm.stats.normalization import resolve_normalization

__all__ = [
    "DatasetStats",
    "LeakError",
    "MomentsAccumulator",
    "StatsFileError",
    "compute_stats",
    "read_stats_file",
    "resolve_normalization",
    "write_stats_file",
]
