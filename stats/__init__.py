"""The statistics pass: exact per-channel moments of the training split, and the stats file."""

from dalinorm.stats.compute import LeakError, compute_stats
from dalinorm.stats.file import DatasetStats, StatsFileError, read_stats_file, write_stats_file
from dalinorm.stats.moments import MomentsAccumulator

__all__ = [
    "DatasetStats",
    "LeakError",
    "MomentsAccumulator",
    "StatsFileError",
    "compute_stats",
    "read_stats_file",
    "write_stats_file",
]
