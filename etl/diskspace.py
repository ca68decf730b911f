"""Out of disk space: recognised once, and told in one line with the path, the free space and what to do."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

_FULL = {errno.ENOSPC, errno.EDQUOT}


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _FULL


def free_space(path: Path) -> str:
    """Free space on the device holding `path` (its nearest existing parent), as '12.3 MB'."""
    for candidate in (path, *path.parents):
        try:
            free = float(shutil.disk_usage(candidate).free)
        except OSError:
            continue
        for unit in ("B", "kB", "MB", "GB"):
            if free < 1000 or unit == "GB":
                return f"{free:.0f} {unit}" if unit == "B" else f"{free:.1f} {unit}"
            free /= 1000
    return "unknown"


RERUN = "free some space or choose another --output, then re-run: what is saved is kept"


def disk_full_message(path: Path | str, what_to_do: str = RERUN) -> str:
    path = Path(path)
    return f"no space left on the device holding {path} ({free_space(path)} free): {what_to_do}"
