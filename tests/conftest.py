"""Shared fixtures; the helpers themselves live in testkit.py (importable by the tests)."""

from __future__ import annotations

import pytest

from testkit import ColourFolder, write_colour_folder


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory) -> tuple[ColourFolder, ColourFolder]:
    """(train, val) flat-colour splits: 37 train images, 23 val images, 3 classes."""
    root = tmp_path_factory.mktemp("colour_data")
    train = write_colour_folder(root, split="train", n=37)
    val = write_colour_folder(root, split="val", n=23)
    return train, val
