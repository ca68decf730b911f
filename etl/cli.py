"""`python scripts/backfill.py`: parse and validate settings, run the pipeline, map outcomes to exit codes."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from etl.diskspace import disk_full_message, is_disk_full
from etl.errors import DatabaseNotUsable, DiskFull
from etl.exitcodes import EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_USAGE
from etl.settings import ConfigError, resolve_settings

# The one table from what ended a run early to its exit code; each prints one line, never a traceback.
# Anything else is a bug and crashes loudly. (A finished run's code comes from its report: etl.report.)
EXIT_CODES: dict[type[BaseException], int] = {
    ConfigError: EXIT_USAGE,
    DatabaseNotUsable: EXIT_USAGE,
    DiskFull: EXIT_FAILURES,
    KeyboardInterrupt: EXIT_INTERRUPTED,
}
INTERRUPTED = "interrupted: re-run the same command to resume"


def exit_code_of(exc: BaseException) -> int:
    return next(code for kind, code in EXIT_CODES.items() if isinstance(exc, kind))


def _one_line(exc: BaseException) -> str:
    return INTERRUPTED if isinstance(exc, KeyboardInterrupt) else f"error: {exc}"


def _terminate_gracefully(signum: int, frame: object) -> None:
    """SIGTERM (systemd, kill, a container stop) is handled like Ctrl-C: finish cleanly, exit 130."""
    raise KeyboardInterrupt


def _run(argv: Sequence[str] | None) -> int:
    settings = resolve_settings(argv)
    signal.signal(signal.SIGTERM, _terminate_gracefully)
    from etl.pipeline import run  # after validation: bad flags answer fast, before heavy imports

    try:
        return run(settings)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(disk_full_message(Path(exc.filename or settings.output))) from None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C is KeyboardInterrupt from here on
    try:
        return _run(argv)
    except tuple(EXIT_CODES) as exc:
        print(_one_line(exc), file=sys.stderr, flush=True)
        return exit_code_of(exc)


if __name__ == "__main__":
    sys.exit(main())
