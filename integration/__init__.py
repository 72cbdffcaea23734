"""What PyTorch users touch: the loader, the torchvision reference path built from the same
config, and the host buffers the CPU loader recycles.

``dalinorm.integration.lightning.DaliDataModule`` (a Lightning ``LightningDataModule``) is not
imported here: it needs the ``lightning`` extra, and only its users pay for importing it."""

from dalinorm.integration.loader import DaliLoader
from dalinorm.integration.reference import reference_loader

__all__ = ["DaliLoader", "reference_loader"]
