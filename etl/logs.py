"""Logging across the extract processes: one transport, secrets masked on the way.

Every process logs with loguru. Children (one plain process per data type) ship their records as plain dicts
over a ``multiprocessing.Manager()`` queue (a record at INFO or above at once, DEBUG ones in batches); the
parent owns every sink: a ``LogHub`` thread re-emits child records into the parent's logger (which writes the
log file) and hands them to the progress display.

Wiring, in the parent::

    configure_parent_logging(log_file, console_level=None)   # replaces loguru's default stderr sink
    with LogHub(log_file, on_record=display.handle, ctx=mp_ctx) as hub:
        ...start the processes with hub.queue, wait for each to end...
        # the children are finished before the hub stops, so the hub drains all they sent

and in each child, first thing: ``install_child_logging(queue, label)``.

Progress travels as ordinary records that carry an event (``etl.events``); the rest are log lines.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import multiprocessing.util
import re
import sys
import threading
import time
import traceback
import unicodedata
from collections.abc import Callable, Mapping
from multiprocessing.managers import SyncManager
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from loguru import logger

from etl.diskspace import disk_full_message, is_disk_full
from etl.procs import quiet_child

LogRecord = dict[str, Any]
RecordCallback = Callable[[LogRecord], None]

PARENT_LABEL = "main"
_STOP = "__nepse_etl_loghub_stop__"
# Marks records re-emitted by LogHub, so the parent forwarder does not hand them to on_record twice.
_FROM_CHILD = "_from_child"

# ---------------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------------

_MASK = "***"
_TOKEN_CHARS = r"[^\s\"',;}\]]+"
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"\b(Salter|Bearer)\s+{_TOKEN_CHARS}", re.IGNORECASE), rf"\1 {_MASK}"),
    (
        re.compile(
            rf"\b((?:authorization|access_?token|refresh_?token)[\"']?\s*[:=]\s*[\"']?)"
            rf"(?!(?:Salter|Bearer)\s)(?!\*\*\*){_TOKEN_CHARS}",
            re.IGNORECASE,
        ),
        rf"\1{_MASK}",
    ),
)
# NEPSE tokens are > 130 characters of mixed-case letters and digits; paths contain "/" and so never
# match, and a long symbol (upper case, as the company list is parsed) is left alone.
_LONG_RUN_MIN = 100
_LONG_RUN = re.compile(rf"[A-Za-z0-9_\-.+=]{{{_LONG_RUN_MIN},}}")


def _may_hold_a_named_token(text: str) -> bool:
    """False when no _SECRET_PATTERNS can match: ASCII text without their words (most strings, found without a
    regex: a case-insensitive one takes 20 us on a log line)."""
    if not text.isascii():
        return True
    lowered = text.lower()
    return "salter" in lowered or "bearer" in lowered or "authorization" in lowered or "access" in lowered \
        or "refresh" in lowered


def _token_like(run: str) -> bool:
    return any(c.islower() for c in run) and any(c.isupper() for c in run) and any(c.isdigit() for c in run)


def mask_secrets(text: str) -> str:
    """Replace Authorization values, access/refresh tokens and long opaque tokens with ***."""
    if _may_hold_a_named_token(text):
        for pattern, replacement in _SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
    if len(text) < _LONG_RUN_MIN:
        return text
    return _LONG_RUN.sub(lambda match: _MASK if _token_like(match.group()) else match.group(), text)


def printable(text: str, keep: str = "") -> str:
    """Control characters (ESC, BEL, ...) and invisible format characters (bidirectional overrides)
    escaped as \\x1b or \\u202e, so that a server's string cannot drive the terminal; `keep` lists
    those left as they are (a log file keeps its newlines)."""
    if text.isprintable() or (keep and text.translate(_dropped(keep)).isprintable()):
        return text  # the common case, and every formatted log line (it ends in a newline), without a loop
    return "".join(char if char in keep or unicodedata.category(char) not in _HIDDEN else _escape(char)
                   for char in text)


_HIDDEN = {"Cc", "Cf", "Zl", "Zp"}


@functools.cache
def _dropped(keep: str) -> dict[int, None]:
    return dict.fromkeys(map(ord, keep))


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _clean(value: Any) -> Any:
    """A JSON-safe, secret-masked copy of a value bound into a record's ``extra``."""
    if isinstance(value, str):
        return mask_secrets(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(item) for item in value]
    return mask_secrets(str(value))


# ---------------------------------------------------------------------------------------------------
# Record conversion and formatting
# ---------------------------------------------------------------------------------------------------


def _format_exception(exception: Any) -> str | None:
    if not exception:
        return None
    lines = traceback.format_exception(exception.type, exception.value, exception.traceback)
    return mask_secrets("".join(lines))


def record_to_dict(record: Mapping[str, Any], label: str) -> LogRecord:
    """Convert a loguru record into the plain, picklable dict that travels between processes."""
    extra = {key: value for key, value in record["extra"].items() if not key.startswith("_")}
    return {
        "time": record["time"].timestamp(),
        "level": record["level"].name,
        "message": mask_secrets(record["message"]),
        "label": label,
        "pid": record["process"].id,
        "extra": _clean(extra),
        "exception": _format_exception(record["exception"]),
    }


def _line_format(record: Mapping[str, Any]) -> str:
    """loguru format template: ``time | LEVEL | label | message key=value ...``, one line per record."""
    label = "{extra[label]}" if "label" in record["extra"] else PARENT_LABEL
    fields = "".join(
        f" {key}={{extra[{key}]}}"
        for key in record["extra"]
        if key != "label" and not key.startswith("_") and key.isidentifier()
    )
    return "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level} | " + label + " | {message}" + fields + "\n{exception}"


class _MaskingWriter:
    """loguru sink masking secrets in each fully formatted line, tracebacks included.

    ``stream=None`` writes to whatever ``sys.stderr`` is at the time (test capture, rich redirection).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._broken = False

    def _target(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def write(self, text: str) -> None:
        self._guarded(lambda: self._target().write(mask_secrets(printable(text, keep="\n\t"))))

    def flush(self) -> None:
        self._guarded(lambda: self._target().flush())

    def stop(self) -> None:
        if self._stream is not None:
            self._guarded(self._stream.flush)
            with contextlib.suppress(OSError):
                self._stream.close()

    def _guarded(self, action: Callable[[], object]) -> None:
        """A log file that cannot be written (a full disk) is said once, then left: loguru would
        otherwise print a 'Logging error' traceback for every record."""
        if self._broken:
            return
        try:
            action()
        except OSError as exc:
            if self._stream is None:
                raise
            self._broken = True
            name = getattr(self._stream, "name", "the log file")
            why = disk_full_message(Path(name)) if is_disk_full(exc) else f"{exc.strerror or exc}"
            sys.stderr.write(f"warning: stopped writing the log file {name}: {why}\n")


# ---------------------------------------------------------------------------------------------------
# Parent side: sinks
# ---------------------------------------------------------------------------------------------------

_file_sink_ids: dict[Path, int] = {}


def ensure_file_sink(log_file: Path) -> int:
    """Add the DEBUG file sink for ``log_file`` unless it is already installed; return its handler id."""
    path = Path(log_file).resolve()
    if path in _file_sink_ids:
        return _file_sink_ids[path]
    path.parent.mkdir(parents=True, exist_ok=True)
    # Line-buffered, so a forked child that closes its inherited copy never re-writes buffered lines.
    stream = path.open("a", encoding="utf-8", buffering=1)
    sink_id = logger.add(_MaskingWriter(stream), level="DEBUG", format=_line_format, backtrace=False, diagnose=False)
    _file_sink_ids[path] = sink_id
    return sink_id


def configure_parent_logging(log_file: Path, console_level: str | None = None) -> list[int]:
    """Replace all loguru sinks with the log file (DEBUG) and, if ``console_level``, stderr.

    ``console_level=None`` means no console sink: the live display renders instead.
    Returns the handler ids.
    """
    close_parent_logging()
    sink_ids = [ensure_file_sink(log_file)]
    if console_level is not None:
        sink_ids.append(
            logger.add(_MaskingWriter(), level=console_level, format=_line_format, backtrace=False, diagnose=False)
        )
    return sink_ids


def close_parent_logging() -> None:
    """Remove every loguru sink (closing the log file)."""
    logger.remove()
    _file_sink_ids.clear()


# ---------------------------------------------------------------------------------------------------
# Parent side: the hub
# ---------------------------------------------------------------------------------------------------


def _known_level(name: str) -> str:
    try:
        logger.level(name)
    except (ValueError, TypeError):
        return "INFO"
    return name


def _reemit(record: LogRecord) -> None:
    """Log a child's record in the parent with the child's time, level, label and extra."""
    message = str(record.get("message", ""))
    if record.get("exception"):
        message = f"{message}\n{str(record['exception']).rstrip()}"
    extra = {str(key): value for key, value in dict(record.get("extra") or {}).items()}
    extra.update(label=record.get("label", "?"), **{_FROM_CHILD: True})
    child_time = record.get("time")

    def keep_child_time(loguru_record: Any) -> None:
        if isinstance(child_time, (int, float)):
            now = loguru_record["time"]
            loguru_record["time"] = now.fromtimestamp(child_time, tz=now.tzinfo)

    logger.patch(keep_child_time).bind(**extra).log(_known_level(str(record.get("level"))), message)


def _is_parent_record(record: Mapping[str, Any]) -> bool:
    return not record["extra"].get(_FROM_CHILD)


class LogHub:
    """Parent end of the log queue: re-emits child records and feeds ``on_record`` (the display).

    With ``include_parent`` the parent's own records are handed to ``on_record`` too (as dicts with
    label ``"main"``), so warnings logged in the parent reach the display as well.
    """

    def __init__(
        self,
        log_file: Path,
        on_record: RecordCallback | None = None,
        ctx: Any = None,
        include_parent: bool = True,
    ) -> None:
        self.log_file = Path(log_file)
        self._on_record = on_record
        self._ctx = ctx if ctx is not None else multiprocessing.get_context()
        self._include_parent = include_parent
        self._manager: Any = None
        self._queue: Any = None
        self._thread: threading.Thread | None = None
        self._forward_sink_id: int | None = None
        self._display_failures = 0

    @property
    def queue(self) -> Any:
        """The Manager queue proxy; picklable, pass it to each child's ``install_child_logging``."""
        if self._queue is None:
            raise RuntimeError("LogHub.start() has not been called")
        return self._queue

    def start(self) -> LogHub:
        ensure_file_sink(self.log_file)
        # The manager must die with us even on SIGKILL, or it lingers with the resource tracker.
        self._manager = SyncManager(ctx=self._ctx)
        # etl.procs imports nothing heavy: the manager process loads only it (not loguru, measured ~10 MB)
        self._manager.start(initializer=quiet_child)
        self._queue = self._manager.Queue()
        self._thread = threading.Thread(target=self._consume, name="log-hub", daemon=True)
        self._thread.start()
        if self._on_record is not None and self._include_parent:
            self._forward_sink_id = logger.add(
                self._forward_parent_record, level="DEBUG", filter=_is_parent_record, format="{message}"
            )
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Drain every record put before this call, then shut the manager down.

        Join the children first: a record a child puts after the sentinel is not delivered.
        """
        if self._manager is None:
            return
        # If the manager died, the consumer has already returned.
        with contextlib.suppress(OSError, EOFError):
            self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("log hub did not drain its queue within {} s", timeout)
        if self._forward_sink_id is not None:
            # ValueError: someone already removed every sink (e.g. logger.remove() in this process).
            with contextlib.suppress(ValueError):
                logger.remove(self._forward_sink_id)
            self._forward_sink_id = None
        self._manager.shutdown()
        self._manager = None

    def __enter__(self) -> LogHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _consume(self) -> None:
        while True:
            try:
                item = self._queue.get()
            except (OSError, EOFError):
                return  # manager gone: nothing more can arrive
            if isinstance(item, str) and item == _STOP:
                return
            for record in item if isinstance(item, list) else [item]:  # a child sends DEBUG records in batches
                if isinstance(record, dict):
                    _reemit(record)
                    self._notify(record)

    def _notify(self, record: LogRecord) -> None:
        if self._on_record is None:
            return
        try:
            self._on_record(record)
        except Exception:
            # A display bug must not stop the log; report the first one, with its traceback.
            self._display_failures += 1
            if self._display_failures == 1:
                logger.opt(exception=True).bind(**{_FROM_CHILD: True}).error("progress display failed on a log record")

    def _forward_parent_record(self, message: Any) -> None:
        if self._on_record is not None:
            self._on_record(record_to_dict(message.record, PARENT_LABEL))


# ---------------------------------------------------------------------------------------------------
# Child side
# ---------------------------------------------------------------------------------------------------


def _write_stderr(record: LogRecord) -> None:
    try:
        sys.stderr.write(f"{record['label']} | {record['level']} | {record['message']}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr closed too: nowhere left to report


# A DEBUG record (one per request) waits in its child at most this long, or until the next record at INFO
# or above, and travels with the others of that moment in one put: a request costs no round trip of its own.
DEBUG_BATCH_S = 0.25
MAX_BATCH = 256
_INFO_NO = 20


class _QueueSink:
    """Child sink. A record at INFO or above is put on the queue at once, together with the DEBUG records
    logged before it, and the call returns only once the manager holds them all: nothing at INFO or above
    is lost if the child exits. DEBUG records wait for that put, or DEBUG_BATCH_S at most (a timer thread).
    Once the queue is gone, records go to stderr."""

    def __init__(self, queue: Any, label: str) -> None:
        self._queue = queue
        self._label = label
        self._queue_gone = False
        self._pending: list[LogRecord] = []
        self._lock = threading.Lock()  # the loguru call and the timer thread both send
        self._timer: threading.Thread | None = None

    def __call__(self, message: Any) -> None:
        record = record_to_dict(message.record, self._label)
        with self._lock:
            self._pending.append(record)
            if message.record["level"].no < _INFO_NO and len(self._pending) < MAX_BATCH and not self._queue_gone:
                self._start_timer()
                return
            self._send()

    def flush(self) -> None:
        with self._lock:
            self._send()

    def _send(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        if not self._queue_gone:
            try:
                # Returns only once the manager holds the records.
                self._queue.put(batch[0] if len(batch) == 1 else batch)
                return
            except Exception:  # any failure means the parent end is gone; a log call must never raise
                self._queue_gone = True
        for record in batch:
            _write_stderr(record)

    def _start_timer(self) -> None:
        if self._timer is None:
            self._timer = threading.Thread(target=self._flush_every, name="log-batch", daemon=True)
            self._timer.start()
            # A child's normal exit (multiprocessing runs these finalizers, before the queue proxy's own).
            multiprocessing.util.Finalize(self, self.flush, exitpriority=100)

    def _flush_every(self) -> None:
        while True:
            time.sleep(DEBUG_BATCH_S)
            self.flush()


_child_sink: _QueueSink | None = None


def install_child_logging(queue: Any, label: str, level: str = "DEBUG") -> None:
    """In a child process: route all loguru records to the parent's LogHub queue.

    Works under ``spawn`` and ``fork``; usable as a Pool ``initializer``.
    """
    global _child_sink
    logger.remove()
    _child_sink = _QueueSink(queue, label)
    logger.add(_child_sink, level=level, format="{message}", backtrace=False, diagnose=False)


def flush_child_logging() -> None:
    """Send the DEBUG records still waiting in this child, and wait for loguru's pending work. Never raises."""
    try:
        if _child_sink is not None:
            _child_sink.flush()
        logger.complete()
        sys.stderr.flush()
    except Exception:  # called on the way out of a child; must not mask its real error
        pass
