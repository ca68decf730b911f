"""The progress events: one small frozen dataclass per kind, holding its fields and its wording.

A process emits one with ``emit(CompanyDone(...))``. It travels as an ordinary log record (see
``etl.logs``) whose ``extra`` holds ``event`` (the kind) and the fields, and the parent reads it back
with ``from_extra``. A misspelt kind is an undefined name and a missing or unknown field a TypeError
where the event is built, so ruff and the tests catch them; a record that carries a malformed event
raises in ``from_extra`` instead of drawing a blank line.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from loguru import logger


def count_noun(count: int, singular: str, plural: str | None = None) -> str:
    """``1,234 records`` / ``1 record``."""
    return f"{count:,} {singular if count == 1 else plural or singular + 's'}"


@dataclass(frozen=True)
class TypeStart:
    """A type's process starts: `total` units (companies, indices) to fetch, `skipped` already complete."""

    kind: ClassVar[str] = "type_start"
    level: ClassVar[str] = "INFO"
    type: str
    total: int
    skipped: int
    budget_rps: float
    units: str = "companies"  # what the type iterates over: its scope

    def describe(self) -> str:
        return f"{self.total:,} {self.units} to fetch, {self.skipped:,} already complete"


@dataclass(frozen=True)
class CompanyDone:
    """A company's file is written; `requests` and `retries` are the type's totals so far."""

    kind: ClassVar[str] = "company_done"
    level: ClassVar[str] = "INFO"
    type: str
    symbol: str
    rows: int
    requests: int
    retries: int

    def describe(self) -> str:
        return f"done ({count_noun(self.rows, 'record')})"


@dataclass(frozen=True)
class CompanyFailed:
    """A company failed after its retries; `requests` and `retries` are the type's totals so far."""

    kind: ClassVar[str] = "company_failed"
    level: ClassVar[str] = "WARNING"
    type: str
    symbol: str
    reason: str
    attempts: int
    requests: int
    retries: int

    def describe(self) -> str:
        return f"failed: {self.reason} after {count_noun(self.attempts, 'attempt')}"


@dataclass(frozen=True)
class RateChanged:
    """The shared host rate was halved or stepped back up (every process may report the same change)."""

    kind: ClassVar[str] = "rate_changed"
    level: ClassVar[str] = "WARNING"
    rate: float
    old_rate: float
    reason: str

    def describe(self) -> str:
        return f"request rate now {self.rate:g} req/s ({self.reason})"


@dataclass(frozen=True)
class TypeEnd:
    kind: ClassVar[str] = "type_end"
    level: ClassVar[str] = "INFO"
    type: str
    requests: int
    retries: int
    throttle_events: int

    def describe(self) -> str:
        requests = count_noun(self.requests, "request")
        retries = count_noun(self.retries, "retry", "retries")
        return f"finished: {requests}, {retries}, {count_noun(self.throttle_events, 'throttle event')}"


@dataclass(frozen=True)
class Request:
    """One request start: its wall-clock time (every process shares the clock), the seconds to its answer,
    and its outcome ('ok' or a failure class of etl.failures). The HTML report draws the run from these."""

    kind: ClassVar[str] = "request"
    level: ClassVar[str] = "DEBUG"
    method: str
    path: str
    params: dict[str, Any]
    started: float
    seconds: float
    outcome: str
    bytes: int

    def describe(self) -> str:
        answer = f"{self.bytes:,} bytes" if self.outcome == "ok" else self.outcome
        return f"{self.method} {self.path} {self.params or ''} -> {answer} in {self.seconds:.3f}s"


@dataclass(frozen=True)
class Retry:
    kind: ClassVar[str] = "retry"
    level: ClassVar[str] = "DEBUG"
    reason: str
    attempt: int
    wait: float

    def describe(self) -> str:
        return f"{self.reason}; retry {self.attempt} in {self.wait:.2f}s"


@dataclass(frozen=True)
class HostRate:
    """The parent's reading of the shared host rate when it changed. A process reports a rate it raised
    only once its own queued start comes round, seconds later; the report's budget line needs the time."""

    kind: ClassVar[str] = "host_rate"
    level: ClassVar[str] = "DEBUG"
    rate: float

    def describe(self) -> str:
        return f"host rate {self.rate:g} req/s"


Event = TypeStart | CompanyDone | CompanyFailed | RateChanged | TypeEnd | Request | Retry | HostRate
TypeEvent = TypeStart | CompanyDone | CompanyFailed | TypeEnd  # the events of one data type
EVENTS: dict[str, type[Event]] = {kind.kind: kind for kind in (TypeStart, CompanyDone, CompanyFailed, RateChanged,
                                                              TypeEnd, Request, Retry, HostRate)}


def as_extra(event: Event) -> dict[str, Any]:
    """The fields a record carries for an event: its kind under ``event``, then its own fields (as they are:
    the log transport copies what it sends, and dataclasses.asdict's deep copy was a third of a request's
    event)."""
    return {"event": event.kind, **{name: getattr(event, name) for name in _field_names(type(event))}}


@functools.cache
def _field_names(event_class: type) -> tuple[str, ...]:
    return tuple(item.name for item in fields(event_class))


def emit(event: Event) -> None:
    """Log the event at its level, worded by ``describe``, with its fields bound for the display."""
    logger.bind(**as_extra(event)).log(event.level, event.describe())


def from_extra(extra: Mapping[str, Any]) -> Event | None:
    """The event a record carries, or None for an ordinary log line; ValueError if it is malformed."""
    kind = extra.get("event")
    if kind is None:
        return None
    event_class = EVENTS.get(str(kind))
    if event_class is None:
        raise ValueError(f"unknown event {kind!r}; the events are {', '.join(EVENTS)}")
    names = _field_names(event_class)
    missing = [name for name in names if name not in extra]
    if missing:
        raise ValueError(f"event {kind} lacks {', '.join(missing)}")
    return event_class(**{name: extra[name] for name in names})
