"""dalinorm: a DALI input pipeline for PyTorch image training, with normalization done right.

Public names::

    from dalinorm import (
        load_config, config_from_dict, Config,          # the config (strict YAML schema)
        DaliLoader,                                     # the DALI loader for PyTorch
        reference_loader,                               # torchvision's DataLoader, same config
        compute_stats, DatasetStats,                    # exact mean/std of the training split
        write_stats_file, read_stats_file,              # the stats file
        DalinormError, ConfigError, DatasetError,       # errors a user can cause (one line each)
        StatsFileError, LeakError, DeviceError, UsageError, MissingDependencyError,
        PipelineError,                                  # DALI failed, not because of a file
        __version__,
    )

Heavy dependencies (DALI, torch, torchvision) are imported only when a name that needs them
is first used: ``import dalinorm`` and ``dalinorm validate`` stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dalinorm.config import Config, config_from_dict, load_config
from dalinorm.errors import (
    ConfigError,
    DalinormError,
    MissingDependencyError,
    UsageError,
)
from dalinorm.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from dalinorm.errors import DatasetError
    from dalinorm.integration.loader import DaliLoader
    from dalinorm.integration.reference import reference_loader
    from dalinorm.pipelines.device import DeviceError
    from dalinorm.pipelines.run import PipelineError
    from dalinorm.stats.compute import LeakError, compute_stats
    from dalinorm.stats.file import (
        DatasetStats,
        StatsFileError,
        read_stats_file,
        write_stats_file,
    )

# name -> the module that defines it, imported on first use
_LAZY = {
    "DaliLoader": "dalinorm.integration.loader",
    "DatasetError": "dalinorm.errors",
    "DatasetStats": "dalinorm.stats.file",
    "DeviceError": "dalinorm.pipelines.device",
    "LeakError": "dalinorm.stats.compute",
    "PipelineError": "dalinorm.pipelines.run",
    "StatsFileError": "dalinorm.stats.file",
    "compute_stats": "dalinorm.stats.compute",
    "read_stats_file": "dalinorm.stats.file",
    "reference_loader": "dalinorm.integration.reference",
    "write_stats_file": "dalinorm.stats.file",
}

# what each lazy name needs installed: checked (without importing it) on first use, so that a
# missing one is a one-line MissingDependencyError saying what to install
_NEEDS = {
    "DaliLoader": ("torch", "nvidia.dali"),
    "compute_stats": ("nvidia.dali",),
    "reference_loader": ("torch", "torchvision"),
}

__all__ = sorted([
    "Config",
    "ConfigError",
    "DalinormError",
    "MissingDependencyError",
    "UsageError",
    "__version__",
    "config_from_dict",
    "load_config",
    *_LAZY,
])


def __getattr__(name: str) -> Any:
    # Lazy so that `import dalinorm` (and `dalinorm validate`) do not pay for torch and DALI.
    if name in _LAZY:
        import importlib
        import importlib.util

        for needed in _NEEDS.get(name, ()):
            try:
                found = importlib.util.find_spec(needed) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                raise MissingDependencyError(needed, f"dalinorm.{name}")
        try:
            module = importlib.import_module(_LAZY[name])
        except ImportError as err:
            missing = MissingDependencyError.from_import_error(err, f"dalinorm.{name}")
            if missing is None:
                raise
            raise missing from err
        return getattr(module, name)
    raise AttributeError(f"module 'dalinorm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
