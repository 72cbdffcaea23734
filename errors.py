"""The errors dalinorm raises for bad input: one family, one line each.

Every error a user can cause is a :class:`DalinormError`; the CLI prints it as one line
``error: <key, file or argument>: <what, what was expected>`` and exits 2. The rooms above
define their own subclasses (a stats file, a pipeline, a device); the ones here are needed
by more than one room.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DalinormError",
    "DatasetError",
    "MissingDependencyError",
    "UsageError",
]


class DalinormError(Exception):
    """Base of the errors dalinorm raises for bad input; the CLI prints them as one line."""


class ConfigError(DalinormError, ValueError):
    """A configuration value is wrong. ``str(err)`` is ``"<key path>: <what, what was expected>"``."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class UsageError(DalinormError, ValueError):
    """A public function, method or command called with a bad argument, or at the wrong time.
    ``str(err)`` is ``"<argument>: <what, what was expected>"``."""

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        self.message = message
        super().__init__(f"{argument}: {message}" if argument else message)


# import name -> what to install (the package names on PyPI)
_INSTALL = {
    "nvidia": "pip install nvidia-dali-cuda120",
    "torch": "pip install torch",
    "torchvision": "pip install torchvision",
    "matplotlib": "pip install 'dalinorm[plot]' (or matplotlib)",
    "lightning": "pip install 'dalinorm[lightning]' (or lightning)",
    "numba": "pip install numba",
    "PIL": "pip install pillow",
    "tqdm": "pip install tqdm",
}


class MissingDependencyError(DalinormError, ImportError):
    """An optional or heavy dependency (DALI, torch, torchvision, matplotlib, ...) is not
    installed; the message says what to install."""

    def __init__(self, module: str, needed_for: str = "dalinorm") -> None:
        root = module.split(".", 1)[0]
        self.module = module
        install = _INSTALL.get(root, f"pip install {root}")
        super().__init__(f"{needed_for} needs {module}, which is not installed: {install}",
                         name=module)

    @classmethod
    def from_import_error(cls, err: ImportError, needed_for: str = "dalinorm") -> "MissingDependencyError | None":
        """The error for ``err`` if it is a missing package dalinorm depends on, else None."""
        name = getattr(err, "name", None) or ""
        if not isinstance(err, ModuleNotFoundError) or name.split(".", 1)[0] not in _INSTALL:
            return None
        if name.startswith("nvidia"):
            name = "nvidia.dali"
        return cls(name, needed_for)


class DatasetError(DalinormError, ValueError):
    """The data on disk is not what the config says it is (missing split, no classes, ...)."""
