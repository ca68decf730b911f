"""What a person sees during and after a run: progress per data type, then the summary.

``make_display(mode, console, budget_rps)`` builds a ``ProgressDisplay``; wire its ``handle`` as the
LogHub's ``on_record``. Modes: ``live`` (rich bars, for a terminal), ``plain`` (one line per event, for
CI, cron and pipes) and ``quiet`` (warnings, errors and the summary only). ``render_summary`` prints
the end-of-run summary from the run report.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from etl.changes import summary_lines
from etl.events import (
    CompanyDone,
    CompanyFailed,
    Event,
    RateChanged,
    TypeEnd,
    TypeEvent,
    TypeStart,
    count_noun,
    from_extra,
)
from etl.exitcodes import EXIT_INTERRUPTED, EXIT_OK
from etl.failures import advice_for
from etl.logs import PARENT_LABEL, printable
from etl.report import exit_code_of, exit_meaning, failed_companies, not_loaded_note

MODES = ("live", "plain", "quiet")
HOST_ROW = "all types"
RATE_WINDOW_S = 5.0
MAX_LISTED_FAILURES = 50
TABLE_WIDTH = 150

_LEVEL_NUMBERS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "SUCCESS": 25, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_LEVEL_STYLES = {"DEBUG": "dim", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}
_DEBUG, _INFO, _WARNING = 10, 20, 30

Clock = Callable[[], float]


def choose_mode(quiet: bool = False, stream: TextIO | None = None) -> str:
    """``quiet`` if asked, ``live`` when the stream (stdout) is a terminal, else ``plain``."""
    if quiet:
        return "quiet"
    target = stream if stream is not None else sys.stdout
    return "live" if target.isatty() else "plain"


def _level_number(name: Any) -> int:
    return _LEVEL_NUMBERS.get(str(name).upper(), _INFO)


def print_verbatim(console: Console, text: str, style: str | None = None) -> None:
    """Print one line verbatim: no markup, highlighting, emoji or wrapping, and no control character
    from a server's string."""
    console.print(printable(text), style=style, markup=False, highlight=False, emoji=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------------
# Per-type counters
# ---------------------------------------------------------------------------------------------------


@dataclass
class TypeProgress:
    """What the display knows about one data type, built from its events."""

    name: str
    budget_rps: float
    total: int | None = None
    already_complete: int = 0
    done: int = 0
    failed: int = 0
    rows: int = 0
    requests: int = 0
    retries: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    # (time, requests) of recent completions; read by the live redraw thread, hence its own lock.
    _window: deque[tuple[float, int]] = field(default_factory=deque, repr=False)
    _window_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def attempted(self) -> int:
        return self.done + self.failed

    def add_requests(self, at: float, count: int) -> None:
        self.requests += count
        if self.started_at is None:
            self.started_at = at
        with self._window_lock:
            self._window.append((at, count))

    def _update_totals(self, event: CompanyDone | CompanyFailed, at: float) -> None:
        """`requests` and `retries` in an event are the type's totals so far (a lost or reordered
        event cannot make them drift)."""
        self.add_requests(at, max(0, event.requests - self.requests))
        self.retries = max(self.retries, event.retries)

    def rate(self, now: float) -> float:
        """Requests/s: over the last few seconds while running, the average once finished."""
        if self.started_at is None:
            return 0.0
        if self.finished_at is not None:
            return self.requests / max(self.finished_at - self.started_at, 1.0)
        with self._window_lock:
            while self._window and self._window[0][0] < now - RATE_WINDOW_S:
                self._window.popleft()
            recent = sum(count for _, count in self._window)
        return recent / min(RATE_WINDOW_S, max(now - self.started_at, 1.0))

    def apply(self, event: TypeEvent, at: float) -> None:
        if isinstance(event, TypeStart):
            self.total = event.total
            self.already_complete = event.skipped
            self.budget_rps = event.budget_rps or self.budget_rps
            self.started_at = at
        elif isinstance(event, CompanyDone):
            self.done += 1
            self.rows += event.rows
            self._update_totals(event, at)
        elif isinstance(event, CompanyFailed):
            self.failed += 1
            self._update_totals(event, at)
        elif isinstance(event, TypeEnd):
            self.finished_at = at
            self.requests = event.requests or self.requests
            self.retries = event.retries or self.retries


# ---------------------------------------------------------------------------------------------------
# Displays
# ---------------------------------------------------------------------------------------------------


class ProgressDisplay:
    """Turns log records (dicts from ``etl.logs``) into progress output; ``handle`` is thread-safe.

    Subclasses decide how a line is shown (``_show``) and may redraw after each event (``_redraw``).
    Events at or above ``min_event_level`` and other records at or above ``min_line_level`` are shown.
    """

    min_event_level = _INFO
    min_line_level = _WARNING

    def __init__(self, console: Console, budget_rps: float, verbose: bool = False, clock: Clock = time.time):
        self.console = console
        self.budget_rps = budget_rps
        self.verbose = verbose
        self._clock = clock
        self._lock = threading.RLock()
        self._stats: dict[str, TypeProgress] = {}
        self._last_rate_change: tuple[Any, Any] | None = None

    def start(self) -> None:
        """Begin drawing (only the live display draws anything of its own)."""

    def stop(self) -> None:
        """Stop drawing; the last frame stays on screen."""

    def __enter__(self) -> ProgressDisplay:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stats(self, type_name: str) -> TypeProgress:
        """The counters for one data type (created on first sight)."""
        with self._lock:
            if type_name not in self._stats:
                self._stats[type_name] = TypeProgress(type_name, self.budget_rps)
            return self._stats[type_name]

    def handle(self, record: Mapping[str, Any]) -> None:
        extra = record.get("extra") or {}
        level = _level_number(record.get("level"))
        event: Event | None = from_extra(extra)
        with self._lock:
            if isinstance(event, RateChanged):
                self._handle_rate_change(str(record.get("label") or PARENT_LABEL), event, level)
            elif isinstance(event, TypeEvent):
                self._handle_event(event, record, level)
            elif level >= self.min_line_level:
                self._show(printable(_record_line(record)), record.get("level"))

    def _handle_event(self, event: TypeEvent, record: Mapping[str, Any], level: int) -> None:
        stats = self.stats(event.type)
        stats.apply(event, float(record.get("time") or self._clock()))
        self._redraw(stats)
        if level >= self.min_event_level:
            self._show(printable(event_line(event, stats)), record.get("level"))

    def _handle_rate_change(self, label: str, event: RateChanged, level: int) -> None:
        # Every process reports the shared host's change; show each change once.
        change = (event.rate, event.reason)
        if change == self._last_rate_change:
            return
        self._last_rate_change = change
        rate = event.rate or self.budget_rps
        self.budget_rps = rate
        for stats in self._stats.values():
            stats.budget_rps = rate
        if level >= self.min_event_level:
            self._show(printable(f"{label}: {event.describe()}"), "WARNING")

    def _show(self, line: str, level: Any) -> None:
        raise NotImplementedError

    def _redraw(self, stats: TypeProgress) -> None:
        """Called after each event of a type; the plain displays have nothing to redraw."""


def event_line(event: TypeEvent, stats: TypeProgress) -> str:
    """``prices [12/600] NABIL done (251 records)``, ``prices: 600 companies to fetch, ...``."""
    if isinstance(event, (CompanyDone, CompanyFailed)):
        total = "?" if stats.total is None else f"{stats.total}"
        return f"{stats.name} [{stats.attempted}/{total}] {event.symbol} {event.describe()}"
    return f"{stats.name}: {event.describe()}"


def _record_line(record: Mapping[str, Any]) -> str:
    """``WARNING: prices: message`` (label left out for the parent), plus a traceback's last line."""
    label = record.get("label") or PARENT_LABEL
    where = "" if label == PARENT_LABEL else f"{label}: "
    line = f"{record.get('level', 'INFO')}: {where}{record.get('message', '')}"
    exception = str(record.get("exception") or "").strip()
    if exception:
        line += f" ({exception.splitlines()[-1]})"
    return line


class PlainDisplay(ProgressDisplay):
    """One line per event, flushed at once: for CI logs, cron mail and pipes."""

    def __init__(self, console: Console, budget_rps: float, verbose: bool = False, clock: Clock = time.time):
        super().__init__(console, budget_rps, verbose, clock)
        if verbose:
            self.min_event_level = self.min_line_level = _DEBUG

    def _show(self, line: str, level: Any) -> None:
        print_verbatim(self.console, line)
        self.console.file.flush()


class QuietDisplay(PlainDisplay):
    """Only warnings and errors (failed companies and rate changes among them)."""

    def __init__(self, console: Console, budget_rps: float, verbose: bool = False, clock: Clock = time.time):
        super().__init__(console, budget_rps, False, clock)
        self.min_event_level = self.min_line_level = _WARNING


class _HostRow:
    """The 'all types' bar: every type summed, its request rate set against the host budget."""

    def __init__(self, display: ProgressDisplay) -> None:
        self._display = display

    def _each(self) -> list[TypeProgress]:
        return list(self._display._stats.values())

    @property
    def budget_rps(self) -> float:
        return self._display.budget_rps

    @property
    def rows(self) -> int:
        return sum(stats.rows for stats in self._each())

    @property
    def retries(self) -> int:
        return sum(stats.retries for stats in self._each())

    @property
    def failed(self) -> int:
        return sum(stats.failed for stats in self._each())

    def rate(self, now: float) -> float:
        return sum(stats.rate(now) for stats in self._each())


class _StatsColumn(ProgressColumn):
    """``12,345 rows  1.2 req/s  3 retries  1 failed`` for a type, and ``4.8/5 req/s`` (against the
    host budget) on the 'all types' bar, computed at each redraw."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock

    def render(self, task: Task) -> Text:
        stats: TypeProgress | _HostRow = task.fields["stats"]
        rate = stats.rate(self._clock())
        budget = f"/{stats.budget_rps:g}" if isinstance(stats, _HostRow) else ""
        text = (
            f"{stats.rows:,} rows  {rate:.1f}{budget} req/s  "
            f"{count_noun(stats.retries, 'retry', 'retries')}  {stats.failed:,} failed"
        )
        return Text(text, style="red" if stats.failed else "")


class LiveDisplay(ProgressDisplay):
    """rich progress bars, one per data type, redrawn in place; warnings and errors print above them."""

    min_event_level = _WARNING

    def __init__(self, console: Console, budget_rps: float, verbose: bool = False, clock: Clock = time.time):
        super().__init__(console, budget_rps, verbose, clock)
        if verbose:
            self.min_line_level = _DEBUG
        self._progress = Progress(
            TextColumn("[bold]{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            _StatsColumn(clock),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self._tasks: dict[str, TaskID] = {}

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    def _show(self, line: str, level: Any) -> None:
        self._progress.console.print(
            Text(line, style=_LEVEL_STYLES.get(str(level).upper(), "")), highlight=False, soft_wrap=True
        )

    def _redraw(self, stats: TypeProgress) -> None:
        if not self._tasks:
            self._tasks[HOST_ROW] = self._progress.add_task(HOST_ROW, total=None, stats=_HostRow(self))
        if stats.name not in self._tasks:
            self._tasks[stats.name] = self._progress.add_task(stats.name, total=stats.total, stats=stats)
        self._progress.update(self._tasks[stats.name], total=stats.total, completed=stats.attempted)
        every = list(self._stats.values())
        totals = [each.total for each in every]
        self._progress.update(self._tasks[HOST_ROW], completed=sum(each.attempted for each in every),
                              total=None if None in totals else sum(t or 0 for t in totals))


def make_display(
    mode: str,
    console: Console | None,
    budget_rps: float,
    verbose: bool = False,
    clock: Clock = time.time,
) -> ProgressDisplay:
    """Build the display for ``mode`` (one of ``MODES``); ``console=None`` means stdout."""
    if mode == "live":
        return LiveDisplay(console or Console(), budget_rps, verbose, clock)
    plain_console = console or Console(no_color=True, highlight=False)
    if mode == "plain":
        return PlainDisplay(plain_console, budget_rps, verbose, clock)
    if mode == "quiet":
        return QuietDisplay(plain_console, budget_rps, verbose, clock)
    raise ValueError(f"unknown display mode {mode!r}; expected one of {', '.join(MODES)}")


# ---------------------------------------------------------------------------------------------------
# End-of-run summary
# ---------------------------------------------------------------------------------------------------


def _number(stats: Mapping[str, Any], key: str) -> int:
    value = stats.get(key)
    return int(value) if isinstance(value, (int, float)) else 0


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _rate(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def _headline(name: str, stats: Mapping[str, Any]) -> str:
    """``Prices: 145,230 new records, 12 skipped, 5 errors``."""
    return (
        f"{name.capitalize()}: {count_noun(_number(stats, 'new'), 'new record')}, "
        f"{_number(stats, 'companies_skipped'):,} skipped, {count_noun(failed_companies(stats), 'error')}"
    )


_TABLE_COLUMNS = (
    ("OK", "companies_ok"),
    ("Failed", "companies_failed"),
    ("Skipped", "companies_skipped"),
    ("New", "new"),
    ("Updated", "updated"),
    ("Unchanged", "unchanged"),
    ("Flagged", "flagged"),
    ("Quarantined", "quarantined"),
    ("Requests", "requests"),
    ("Retries", "retries"),
    ("Throttled", "throttle_events"),
)


def _summary_table(types: Mapping[str, Mapping[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="Run summary", title_justify="left", pad_edge=False)
    table.add_column("Type", no_wrap=True)
    for header, _ in _TABLE_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("req/s", justify="right", no_wrap=True)
    table.add_column("Elapsed", justify="right", no_wrap=True)
    for name, stats in types.items():
        numbers = [f"{_number(stats, key):,}" for _, key in _TABLE_COLUMNS]
        table.add_row(name, *numbers, _rate(stats.get("achieved_rps")), _duration(stats.get("elapsed_s")))
    return table


def _failures(types: Mapping[str, Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for name, stats in types.items():
        for error in stats.get("errors") or []:
            yield {"type": name, **error}


def _failure_lines(report: Mapping[str, Any]) -> list[str]:
    """What went wrong, agreeing with the exit code: the fatal error, quarantined files, each failed
    company, then the failure table's advice once per cause."""
    code = exit_code_of(report)
    if code == EXIT_OK:
        return ["No failures."]
    lines = ["Run failed before the end: the error above says why (also in the run report)."] \
        if report.get("fatal_error") else []
    bad_files = report.get("bad_files") or []
    if bad_files:
        lines.append(f"{count_noun(len(bad_files), 'raw file')} quarantined: see {_quarantine_dir(bad_files[0])} "
                     "(a .reason.txt beside each)")
    failures = list(_failures(report.get("types") or {}))
    if failures:
        lines.append(f"Failures ({len(failures):,}):")
        for failure in failures[:MAX_LISTED_FAILURES]:
            attempts = count_noun(int(failure.get("attempts") or 0), "attempt")
            lines.append(f"  {failure.get('type', '?')} {failure.get('symbol', '?')}: "
                         f"{failure.get('reason', '-')} ({attempts})")
        if len(failures) > MAX_LISTED_FAILURES:
            lines.append(f"  ... and {len(failures) - MAX_LISTED_FAILURES:,} more")
        causes = dict.fromkeys(str(failure["outcome"]) for failure in failures if failure.get("outcome"))
        lines += [f"What to do: {advice}" for advice in dict.fromkeys(map(advice_for, causes))]
        lines.append("Re-run the same command to fetch what is missing: completed companies are not fetched again.")
    if code == EXIT_INTERRUPTED and not lines:
        lines.append("Interrupted: re-run the same command to resume.")
    return lines


def _quarantine_dir(bad_file: str) -> str:
    output = next((folder.parent for folder in Path(bad_file).parents if folder.name == "raw"), None)
    return str(output / "quarantine" / "files") if output else "the quarantine folder"


def _print_table(console: Console, table: Table) -> None:
    if console.is_terminal:
        console.print(table)
        return
    # Not a terminal (log file, CI, pipe): rich would squeeze the table into 80 columns; render it as
    # plain text at a width it fits in.
    plain = Console(file=io.StringIO(), width=max(console.width, TABLE_WIDTH), no_color=True, highlight=False)
    plain.print(table)
    for line in plain.file.getvalue().splitlines():
        print_verbatim(console, line.rstrip())


def render_summary(report: Mapping[str, Any], console: Console) -> None:
    """Print the end-of-run summary from the run report (missing keys show as 0 or "-")."""
    types: Mapping[str, Mapping[str, Any]] = report.get("types") or {}
    for name, stats in types.items():
        print_verbatim(console, _headline(name, stats))
    _print_table(console, _summary_table(types))
    for line in _failure_lines(report):
        print_verbatim(console, line)
    for line in summary_lines(types):
        print_verbatim(console, line)
    not_loaded = not_loaded_note(report)
    print_verbatim(console, f"Database: {report.get('database') or '-'}" + (f" ({not_loaded})" if not_loaded else ""))
    for title, key in (("Run report", "report_path"), ("Log", "log_path")):
        print_verbatim(console, f"{title}: {report.get(key) or '-'}")
    code = exit_code_of(report)
    print_verbatim(console, f"Exit code: {code} ({exit_meaning(code)})")
