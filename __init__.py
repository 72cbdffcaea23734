"""dalinorm: a DALI input pipeline for PyTorch image training, with normalization done right.

Public names::

    from dalinorm import load_config, Config, ConfigError, DaliLoader

Heavy dependencies (DALI, torch) are imported only when a loader is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dalinorm.config import Config, ConfigError, DalinormError, config_from_dict, load_config

__all__ = [
    "Config",
    "ConfigError",
    "DaliLoader",
    "DalinormError",
    "DatasetError",
    "config_from_dict",
    "load_config",
]

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from dalinorm.integration.loader import DaliLoader
    from dalinorm.pipelines.files import DatasetError

_LAZY = {
    "DaliLoader": "dalinorm.integration.loader",
    "DatasetError": "dalinorm.pipelines.files",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import dalinorm` (and `dalinorm validate`) do not pay for torch and DALI.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dalinorm' has no attribute {name!r}")
