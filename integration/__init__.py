"""What PyTorch users touch: the loader, the torchvision reference path built from the same
config, and the host buffers the CPU loader recycles."""

from dalinorm.integration.loader import DaliLoader
from dalinorm.integration.reference import reference_loader

__all__ = ["DaliLoader", "reference_loader"]
