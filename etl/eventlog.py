"""The run's event record: `<output>/runs/<run_id>.events.jsonl`, one JSON object per structured event.

The parent writes it from the records that already reach it over the log queue (every record that
carries an ``event``), so nothing in the children changes but the events they emit. The HTML
report reads it to draw the run. One line per event::

    {"t": 1764354547.12, "label": "prices", "event": "request", "started": 1764354547.03, "outcome": "ok"}
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

EVENTS_SUFFIX = ".events.jsonl"


def events_path(runs_dir: Path, run_id: str) -> Path:
    return runs_dir / f"{run_id}{EVENTS_SUFFIX}"


def event_line(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The compact form of a log record that carries an event, or None for an ordinary log line."""
    extra = record.get("extra") or {}
    name = extra.get("event")
    if not isinstance(name, str):
        return None
    fields = {key: value for key, value in extra.items() if key not in {"event", "label"}}
    return {"t": record.get("time"), "label": record.get("label"), "event": name, **fields}


class EventRecorder:
    """Appends the event records handed to it (LogHub's ``on_record``) to the run's events file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream: TextIO | None = None
        self._open = False  # the file is made with the first event: a run that records none leaves none

    def __enter__(self) -> EventRecorder:
        self._open = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self._open = False

    def handle(self, record: Mapping[str, Any]) -> None:
        line = event_line(record)
        if line is None or not self._open:
            return
        if self._stream is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = self.path.open("a", encoding="utf-8")
        self._stream.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every well-formed event of a file; a torn last line (a killed run) or a foreign line is skipped."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as stream:
        for line in stream:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and isinstance(item.get("event"), str):
                yield item
