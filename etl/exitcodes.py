"""The exit codes, and what each means to a person and to a scheduler: --help and docs/usage.md are
written from this table."""

from __future__ import annotations

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# (code, meaning, what a scheduler should do)
EXIT_CODE_TABLE: tuple[tuple[int, str, str], ...] = (
    (EXIT_OK, "success", "nothing"),
    (EXIT_FAILURES, "finished, but some companies failed, a raw file was quarantined or the host could not be "
     "reached", "alert; re-run the same command later: only what is missing is fetched"),
    (EXIT_USAGE, "bad usage or configuration (one line on stderr says what and how to fix it; nothing "
     "already saved is touched)", "alert: a person must fix the command or the settings"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C or SIGTERM)", "re-run the same command to resume"),
)
