#!/usr/bin/env python3
"""Backfill NEPSE data into SQLite. `python scripts/backfill.py --help` lists every option."""

import signal
import sys
from pathlib import Path

if __name__ == "__main__":  # not when a spawned child re-imports this file
    # A Ctrl-C while Python is still importing just stops, without a traceback; main() takes over.
    signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(130))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    # Imported here, not above: a spawned child (the log manager, each type's process) re-imports this file
    # first, and needs none of the CLI (measured: the log manager ~12 MB smaller); it imports what it runs.
    from etl.cli import main

    sys.exit(main())
