"""`python scripts/backfill.py`: parse and validate settings, run the pipeline, map outcomes to exit codes."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from etl.report import EXIT_INTERRUPTED, EXIT_USAGE
from etl.settings import ConfigError, resolve_settings


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _terminate_gracefully(signum: int, frame: object) -> None:
    """SIGTERM (systemd, kill, a container stop) is handled like Ctrl-C: finish cleanly, exit 130."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C is KeyboardInterrupt from here on
    try:
        settings = resolve_settings(argv)
    except ConfigError as exc:
        return fail(str(exc))
    signal.signal(signal.SIGTERM, _terminate_gracefully)
    try:
        from etl.pipeline import run  # after validation: bad flags answer fast, before heavy imports

        return run(settings)
    except ConfigError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
