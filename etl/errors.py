"""Errors that end a run with one line and no traceback; `etl/cli.py` maps each class to its exit code.

Kept light (no third-party import) so the CLI can name them before the heavy modules load.
"""

from __future__ import annotations


class DatabaseNotUsable(Exception):
    """The database is locked, corrupt or belongs to something else."""


class DiskFull(Exception):
    """A write failed for lack of space; the message names the path, the free space and what to do."""
