"""What PyTorch users touch: the loader and the distributed glue."""

from dalinorm.integration.loader import DaliLoader

__all__ = ["DaliLoader"]
