"""Extract: one process per data type, each an aiohttp event loop writing the raw zone.

`run_type_job` is what the pool runs. Workers pull the units of the type's scope
(companies, indices) off a queue; each unit is fetched whole (every page), parsed, and
written as one atomic Parquet file, or not written at all. A unit that still fails after
the retries is recorded and the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger

from etl import datatypes
from etl.budget import HostBudget, WorkMeter
from etl.changes import UnitChange, compare
from etl.client import ClientConfig, NepseClient, StopRequested
from etl.datatypes.base import DataType, Unit, rows_to_table  # noqa: F401 - rows_to_table lived here
from etl.diskspace import disk_full_message, is_disk_full
from etl.events import CompanyDone, CompanyFailed, TypeEnd, TypeStart, emit
from etl.failures import FetchError
from etl.logs import flush_child_logging, install_child_logging
from etl.plan import WorkItem, covered_until, expected_requests
from etl.procs import children_start_deaf_to_ctrl_c, die_with_parent, ignore_ctrl_c, release_freed_memory
from etl.rawzone import RawZone, UnsafeSymbol, read_meta
from etl.settings import Settings
from etl.wasm_auth import PositionsServer, TokenScheme

ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


@dataclass
class ExtractCounts:
    type_name: str
    companies_total: int = 0
    companies_ok: int = 0
    companies_failed: int = 0
    companies_skipped: int = 0
    rows_fetched: int = 0
    requests: int = 0
    retries: int = 0
    throttle_events: int = 0
    auth_calls: int = 0
    elapsed_s: float = 0.0
    finished_at: str = ""  # UTC, ISO 8601 with milliseconds: how close together the types finished
    interrupted: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    disk_full: str = ""  # once a write fails for lack of space, no new company starts
    first_fetched: int = 0  # units that had no raw file before this run
    changes: list[dict[str, Any]] = field(default_factory=list)  # UnitChange of each unit whose data changed
    startup_cpu_s: float = 0.0  # CPU the type's process spent starting (interpreter, imports) before its first request
    pid: int = 0  # the type's process
    cpu_s: float = 0.0  # CPU seconds of that process, its start-up included

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        del result["disk_full"]
        result["achieved_rps"] = self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0
        return result


@dataclass(frozen=True)
class ExtractJob:
    type_name: str
    items: list[WorkItem]
    skipped: int
    settings: Settings
    job_id: str
    run_id: str
    token_scheme: TokenScheme = field(default_factory=lambda: TokenScheme(None))  # css.wasm or the formula
    member: int = 0  # this type's place in the host budget's shares


# ---- the processes: one per data type (parent side)


class ExtractProcesses:
    """One process per data type, each handing back its ExtractCounts through a pipe.

    Plain processes rather than multiprocessing.Pool: a Pool never reports a worker killed under it
    (OOM, kill -9) and can hang on terminate afterwards; here a process that dies without a result is
    seen at once and recorded as a failure of its type, and the others go on.
    """

    def __init__(self, ctx: BaseContext, budget: HostBudget, log_queue: Any) -> None:
        self._ctx = ctx
        self._budget = budget
        self._log_queue = log_queue
        self.stop_event = ctx.Event()
        self._running: dict[str, tuple[BaseProcess, Connection]] = {}
        self._positions: PositionsServer | None = None

    def start(self, jobs: list[ExtractJob]) -> None:
        for job in jobs:
            if self._positions is None:  # every job of a run cleans tokens alike: one server for them all
                self._positions = PositionsServer(self._ctx, job.token_scheme)
            job = replace(job, token_scheme=self._positions.scheme_for_child())
            receiver, sender = self._ctx.Pipe(duplex=False)
            process = self._ctx.Process(
                target=type_process_main, name=f"extract-{job.type_name}", daemon=True,
                args=(job, self._budget, self._log_queue, self.stop_event, sender))
            with children_start_deaf_to_ctrl_c(), _system_allocator_for_children():
                process.start()
            sender.close()
            if job.token_scheme.server is not None:
                job.token_scheme.server.close()  # the child's end: the child holds its own now
            self._running[job.type_name] = (process, receiver)

    @property
    def running(self) -> bool:
        return bool(self._running)

    def collect(self, timeout: float) -> dict[str, dict[str, Any]]:
        """Results of the processes that ended within `timeout` seconds (answering their token questions meanwhile)."""
        waitables = [item for process, receiver in self._running.values() for item in (receiver, process.sentinel)]
        questions = self._positions.pipes if self._positions else []
        ready = wait(waitables + questions, timeout)
        if self._positions is not None:
            self._positions.answer(ready)
        finished: dict[str, dict[str, Any]] = {}
        for name, (process, receiver) in list(self._running.items()):
            result = _receive(receiver)
            if result is None and process.is_alive():
                continue
            process.join(5)
            if result is None:
                result = lost_type(name, f"extract process {process.pid} died (exit code {process.exitcode})")
            finished[name] = result
            receiver.close()
            del self._running[name]
        return finished

    def kill(self) -> None:
        for process, _receiver in self._running.values():
            process.kill()
        for process, _receiver in self._running.values():
            process.join(5)
        if self._positions is not None:
            self._positions.close()


@contextlib.contextmanager
def _system_allocator_for_children() -> Iterator[None]:
    """Arrow's default allocator keeps arenas of its own (measured ~7 MB per extract process, ~18 MB for
    prices); an extract process holds one company's small table at a time, for which malloc does as well.
    A spawned child reads this when it imports pyarrow; a forked one is told in `type_process_main`."""
    previous = os.environ.get(ARROW_POOL_VARIABLE)
    os.environ[ARROW_POOL_VARIABLE] = "system"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ARROW_POOL_VARIABLE, None)
        else:
            os.environ[ARROW_POOL_VARIABLE] = previous


def _receive(receiver: Connection) -> dict[str, Any] | None:
    try:
        return receiver.recv() if receiver.poll() else None
    except (EOFError, OSError):
        return None


def lost_type(name: str, reason: str) -> dict[str, Any]:
    logger.error(f"{name}: {reason}; companies it had finished are saved, re-run to fetch the rest")
    return type_failure(name, reason)


def type_failure(name: str, reason: str) -> dict[str, Any]:
    """The result of a type that failed as a whole (its process died, its units could not be listed)."""
    return {"type_name": name, "companies_failed": 1,
            "errors": [{"type": name, "symbol": "*", "reason": reason, "attempts": 0}]}


# ---- one type's process (child side)


def type_process_main(job: ExtractJob, budget: HostBudget, log_queue: Any, stop_event: Any,
                      results: Connection) -> None:
    ignore_ctrl_c()
    die_with_parent()
    pa.set_memory_pool(pa.system_memory_pool())
    # The run's process, not os.getppid(): under forkserver the parent is the fork server.
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        return  # the run is already gone
    install_child_logging(log_queue, label=job.type_name)
    try:
        result = asyncio.run(extract_type(job, budget, stop_event.is_set)).as_dict()
    except Exception as exc:  # a bug: this type stops here, loudly; the other types' work goes on
        logger.exception(f"extract stopped by a bug: {type(exc).__name__}: {exc}")
        result = lost_type(job.type_name, f"extract stopped by a bug: {type(exc).__name__}: {exc} "
                                          "(the traceback is in the log)")
    flush_child_logging()
    results.send({**result, "pid": os.getpid(), "cpu_s": round(time.process_time(), 3)})
    results.close()


# ---- the event loop

# What the server or the machine can do to one company besides a failed request (FetchError): a symbol
# that cannot be a path, a file that cannot be written. Recorded as the company's failure; the run goes
# on. A record the server garbled is not one of them: the parser keeps it as a row with its reason. Any
# other exception is a bug of ours and stops the type's process with its traceback (type_process_main).
COMPANY_FAILURES = (UnsafeSymbol, OSError)


async def extract_type(job: ExtractJob, budget: HostBudget, stop_requested: Any) -> ExtractCounts:
    data_type = datatypes.get(job.type_name)
    zone = RawZone(job.settings.output)
    result = ExtractCounts(job.type_name, companies_total=len(job.items) + job.skipped,
                           companies_skipped=job.skipped)
    emit(TypeStart(type=job.type_name, total=len(job.items), skipped=job.skipped, budget_rps=budget.max_rate,
                   units=data_type.scope.name))
    started = time.monotonic()
    budget = budget.member(job.member)
    planned = [(item, expected_requests(item, data_type, job.settings.page_size)) for item in job.items]
    queue: asyncio.Queue[tuple[WorkItem, int]] = asyncio.Queue()
    for entry in planned:
        queue.put_nowait(entry)
    meter = WorkMeter(budget, sum(expected for _, expected in planned))
    meter.publish()
    try:
        async with NepseClient(ClientConfig.from_settings(job.settings), budget, stop_check=stop_requested,
                               token_scheme=job.token_scheme) as client:
            # In a type's process, the CPU it took to get here since it began (a forked one starts at zero):
            # interpreter, imports, arguments, the client.
            result.startup_cpu_s = round(time.process_time(), 3)
            # Twice as many workers as requests allowed in flight: a company sleeping off a backoff holds
            # no request slot, so the others keep the type's share busy meanwhile.
            workers = [asyncio.create_task(_worker(queue, client, data_type, zone, job, result, meter))
                       for _ in range(min(2 * job.settings.concurrency, len(job.items)))]
            await asyncio.gather(*workers)
            stats = client.stats
    finally:
        meter.close()  # hand this type's share to the others at once
    if result.disk_full and not queue.empty():
        left = queue.qsize()
        result.companies_failed += left - 1  # one line for them all, not one per company
        _record_failure(result, Unit(0, "*"), f"not started ({left} companies): {result.disk_full}", 0, client)
    result.requests, result.retries = stats.requests, stats.retries
    result.throttle_events, result.auth_calls = stats.throttle_events, stats.auth_calls
    result.elapsed_s = time.monotonic() - started
    result.finished_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    result.interrupted = bool(stop_requested())
    emit(TypeEnd(type=job.type_name, requests=result.requests, retries=result.retries,
                 throttle_events=result.throttle_events))
    return result


async def _worker(queue: asyncio.Queue[tuple[WorkItem, int]], client: NepseClient, data_type: DataType,
                  zone: RawZone, job: ExtractJob, result: ExtractCounts, meter: WorkMeter) -> None:
    while not queue.empty() and not result.disk_full:
        item, expected = queue.get_nowait()
        work = meter.start(expected)
        try:
            outcome = await fetch_unit(client, data_type, zone, item, job)
        except StopRequested:
            return
        except FetchError as error:
            _record_failure(result, item.unit, error.detail, error.attempts, client, error.outcome)
        except OSError as error:
            if is_disk_full(error):
                result.disk_full = disk_full_message(zone.root)
                _record_failure(result, item.unit, result.disk_full, 1, client)
            else:
                _record_failure(result, item.unit, f"{type(error).__name__}: {error}", 1, client)
        except UnsafeSymbol as error:
            _record_failure(result, item.unit, f"{type(error).__name__}: {error}", 1, client)
        else:
            result.companies_ok += 1
            result.rows_fetched += outcome.rows
            result.first_fetched += outcome.first
            if outcome.change is not None:
                result.changes.append(outcome.change.as_dict())
            emit(CompanyDone(type=job.type_name, symbol=item.unit.key, rows=outcome.rows,
                             requests=client.stats.requests, retries=client.stats.retries))
        finally:
            meter.finish(work)


def _record_failure(result: ExtractCounts, unit: Unit, reason: str, attempts: int, client: NepseClient,
                    outcome: str | None = None) -> None:
    """`outcome`: the failure table's key, whose advice the summary gives once per cause."""
    result.companies_failed += 1
    result.errors.append({"type": result.type_name, "symbol": unit.key, "reason": reason,
                          "attempts": attempts, "outcome": outcome})
    emit(CompanyFailed(type=result.type_name, symbol=unit.key, reason=reason, attempts=attempts,
                       requests=client.stats.requests, retries=client.stats.retries))


@dataclass(frozen=True)
class UnitOutcome:
    rows: int  # fetched
    first: bool  # the unit had no file before
    change: UnitChange | None  # how its data differs from its previous file


async def fetch_unit(client: NepseClient, data_type: DataType, zone: RawZone, item: WorkItem,
                     job: ExtractJob) -> UnitOutcome:
    """Fetch, parse and atomically write one unit's data (a company's, an index's)."""
    path = zone.partition_path(data_type.name, item.unit.key)  # check the key before fetching
    records = await data_type.fetch(client, item.unit, item.window)
    fetched_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    table = data_type.to_table(records, item.unit, fetched_at)
    del records  # the decoded JSON is the largest thing this process holds
    # "security_id" is the unit's id (an index id for indices): the key stays for files already written.
    meta: dict[str, Any] = {"type": data_type.name, "symbol": item.unit.key,
                            "security_id": item.unit.id, "fetched_at": fetched_at,
                            "run_id": job.run_id, "job_id": job.job_id}
    # Off the event loop: a stalled loop delays request starts, and the host budget is only as
    # exact as the moment each request really leaves.
    existed, change = await asyncio.to_thread(_write_unit_file, zone, path, table, meta, item, data_type)
    rows = table.num_rows
    del table
    release_freed_memory()
    return UnitOutcome(rows, not existed, change)


def _write_unit_file(zone: RawZone, path: Path, table: pa.Table, meta: dict[str, Any], item: WorkItem,
                     data_type: DataType) -> tuple[bool, UnitChange | None]:
    """Write the unit's file; (was there one before, what changed since it)."""
    existed = path.exists()
    previous = _read_previous(path) if existed else None
    change = compare(previous, table, data_type, item.unit.key)
    if data_type.incremental:
        table, meta = _merge_window(path, previous, table, meta, item, data_type)
    zone.write(path, table, meta)
    return existed, change


def _read_previous(path: Path) -> pa.Table | None:
    try:
        return pq.read_table(path).replace_schema_metadata(None)
    except (OSError, pa.ArrowException) as exc:
        logger.warning(f"could not read the previous {path} ({exc}); replacing it")
        return None


def _merge_window(path: Path, old: pa.Table | None, new: pa.Table, meta: dict[str, Any], item: WorkItem,
                  data_type: DataType) -> tuple[pa.Table, dict]:
    """Incremental types: the new days join the days already saved (`old`), newest fetch winning."""
    import pyarrow.compute as pc  # as the parsers do: only the types with a date column use it

    date_column = str(data_type.date_column)
    newest = pc.max(new.column(date_column)).as_py() or None  # the newest day fetched (an empty string is none)
    meta["covered_from"] = item.window.since.isoformat()
    meta["covered_until"] = covered_until(item.window, newest).isoformat()
    if old is not None:
        try:
            old_meta = read_meta(path) or {}
            if old.schema.equals(new.schema):
                new = _replace_refetched_keys(old, new, data_type).cast(new.schema)
                meta["covered_from"] = min(meta["covered_from"], old_meta.get("covered_from", meta["covered_from"]))
                meta["covered_until"] = max(meta["covered_until"], old_meta.get("covered_until", ""))
        except (OSError, pa.ArrowException) as exc:
            logger.warning(f"could not merge with {path} ({exc}); replacing it with the new window")
    return new, meta


def _replace_refetched_keys(old: pa.Table, new: pa.Table, data_type: DataType) -> pa.Table:
    """Saved rows whose key the new answer carries again give way to it; every other row stays as it came,
    copies of a key sent twice in one answer included, so the load can still flag those that differ."""
    import polars as pl  # only here: a first run of the extract processes never loads polars

    key = list(data_type.natural_key)
    old_frame, new_frame = pl.from_arrow(old), pl.from_arrow(new)
    assert isinstance(old_frame, pl.DataFrame) and isinstance(new_frame, pl.DataFrame)
    kept = old_frame.join(new_frame.select(key).unique(), on=key, how="anti", nulls_equal=True)
    merged = pl.concat([kept, new_frame], how="vertical")
    return merged.sort(str(data_type.date_column), descending=True, maintain_order=True).to_arrow()
