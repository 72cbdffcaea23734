"""``dalinorm check-data``: every unusable file of the splits, and the checked list."""

from __future__ import annotations

from pathlib import Path

from dalinorm.atomic import write_atomically
from dalinorm.config import Config
from dalinorm.pipelines.checks import CheckReport, check_split, format_checked_list

__all__ = ["check_data"]


def check_data(cfg: Config, splits: tuple[str, ...], *, write_list: Path | None = None
               ) -> tuple[list[CheckReport], list[str]]:
    """Check ``splits`` (with progress bars); (the reports, the lines to print). With
    ``write_list`` the good files go there (atomically) for ``data.checked_list``."""
    reports = [check_split(cfg, split, progress=True) for split in splits]
    lines = []
    for report in reports:
        lines += [str(bad) for bad in report.bad]
        lines.append(f"{report.split}: {len(report.listing)} files, {len(report.good)} good, "
                     f"{len(report.bad)} bad ({report.listing.root})")
    if write_list is not None:
        write_atomically(Path(write_list),
                         format_checked_list(reports, cfg.data.root).encode("utf-8", "surrogateescape"))
        lines.append(f"wrote {write_list}: use it with data.on_bad_file: skip and "
                     f"data.checked_list: {write_list}")
    return reports, lines
