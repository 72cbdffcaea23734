"""Progress bars on long work (stats pass, check-data, pack, index): tqdm when shown, a
stand-in that does nothing when not (a non-zero rank, a library call without progress)."""

from __future__ import annotations

__all__ = ["progress_bar"]


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, *, desc: str, unit: str = "img", enabled: bool = True):
    """A progress bar over ``total`` units (``update``, ``set_postfix``, ``close``)."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, smoothing=0.1)
