"""What each data type must fetch this run: incremental windows and resume.

A raw file's metadata says what it covers. Incremental types (prices, indices) fetch
only the days after the newest one covered; other types are refetched each run, except
when resuming an interrupted run (same units, window and options), where a unit whose
file that run already wrote is skipped.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from etl.datatypes.base import DataType, FetchWindow, Unit
from etl.rawzone import PartitionInfo, RawZone
from etl.settings import Settings, nepal_today


@dataclass(frozen=True)
class WorkItem:
    unit: Unit
    window: FetchWindow


# NEPSE's trading days in a year: Sunday to Thursday less its many public holidays. Measured on the real
# daily price files (days with any row, per calendar year): 2016-2025 gave 233, 230, 240, 245, 184 (the 2020
# lockdown), 239, 242, 227, 232, 225; median 232.5 (233 without 2020), here rounded up. Five days a week
# would be 261, 12 % more than NEPSE trades.
TRADING_DAYS_PER_YEAR = 233
DAYS_PER_YEAR = 365.25


def expected_requests(item: WorkItem, data_type: DataType, page_size: int) -> int:
    """Requests one company is expected to need: a paged type's pages, a row per trading day of the window
    (as if the company traded on every one of them, so an upper bound for a young or thinly traded one)."""
    if not data_type.incremental:
        return data_type.calls_per_company
    days = (item.window.until - item.window.since).days + 1
    return max(1, math.ceil(days * TRADING_DAYS_PER_YEAR / DAYS_PER_YEAR / page_size))


@dataclass
class FetchPlan:
    type_name: str
    items: list[WorkItem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.items) + len(self.skipped)


def job_fingerprint(settings: Settings, units: dict[str, list[Unit]]) -> str:
    """What makes two invocations 'the same command' for resuming (`units`: each scope's units)."""
    since, until = settings.window
    # The demo simulator listens on a new port each run; what identifies it is its seed and size.
    source = f"demo:{settings.demo_seed}:{settings.demo_companies}" if settings.demo else settings.base_url
    identity = {
        "source": source,
        "units": {scope: [unit.key for unit in listed] for scope, listed in sorted(units.items())},
        "since": since.isoformat(),
        "until": until.isoformat(),
        "full": settings.full,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


class ResumeState:
    """`<output>/state/job.json`: the job in progress, until a run of it ends cleanly."""

    def __init__(self, output: Path) -> None:
        self.path = output / "state" / "job.json"

    def read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def begin(self, fingerprint: str, run_id: str) -> tuple[str, bool]:
        """(job id, resuming?): the unfinished job with this fingerprint, or a new one."""
        current = self.read()
        if current and current.get("fingerprint") == fingerprint and current.get("job_id"):
            return str(current["job_id"]), True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"fingerprint": fingerprint, "job_id": run_id}), encoding="utf-8")
        temporary.replace(self.path)
        return run_id, False

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def covered_until(window: FetchWindow, newest_row: str | None, today: date | None = None) -> date:
    """The last day a price fetch settled: today's row may still be missing until the day closes."""
    today = today or nepal_today()
    settled = min(window.until, today - timedelta(days=1))
    if newest_row:
        settled = max(settled, min(window.until, date.fromisoformat(newest_row)))
    return settled


def _incremental_window(info: PartitionInfo | None, settings: Settings) -> FetchWindow | None:
    since, until = settings.window
    if info is None or settings.full:
        return FetchWindow(since, until)
    covered_from = date.fromisoformat(info.meta.get("covered_from", "9999-12-31"))
    covered_to = date.fromisoformat(info.meta.get("covered_until", "0001-01-01"))
    if covered_from > since:
        return FetchWindow(since, until)  # asked for older history than we have
    start = max(since, covered_to + timedelta(days=1))
    return FetchWindow(start, until) if start <= until else None


def plan_type(data_type: DataType, units: list[Unit], zone: RawZone, settings: Settings,
              resume_job: str | None) -> FetchPlan:
    """The units of the type's scope still to fetch, each with its window."""
    infos = zone.partition_infos(data_type.name)
    since, until = settings.window
    plan = FetchPlan(data_type.name)
    for unit in units:
        info = infos.get(unit.key)
        done_by_job = resume_job is not None and info is not None and info.meta.get("job_id") == resume_job
        if done_by_job:
            plan.skipped.append(unit.key)
            continue
        window = _incremental_window(info, settings) if data_type.incremental else FetchWindow(since, until)
        if window is None:
            plan.skipped.append(unit.key)
        else:
            plan.items.append(WorkItem(unit, window))
    return plan
