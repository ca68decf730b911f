#!/usr/bin/env python3
"""Backfill NEPSE data into SQLite. `python scripts/backfill.py --help` lists every option."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from etl.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
