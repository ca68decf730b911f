"""Process hygiene: what every process of a run does for itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import etl

# 50 MB in 64 KB blocks (below glibc's mmap threshold: they come from the heap), all freed but the last,
# which pins the top of the heap so that free() alone cannot hand any of it back.
_PROBE = """
import psutil
from etl.procs import release_freed_memory
process = psutil.Process()
blocks = [bytearray(64 * 1024) for _ in range(800)]
del blocks[:-1]
before = process.memory_info().rss
release_freed_memory()
print((before - process.memory_info().rss) // 2**20)
"""


def test_memory_a_process_freed_goes_back_to_the_system() -> None:
    released_mb = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60,
                                 cwd=Path(etl.__file__).parent.parent, check=True).stdout
    assert int(released_mb) >= 30
