"""The whole run: company list -> plan -> extract (one process per type) -> load -> report.

The stages hand off through files on disk: extract writes the raw zone, load reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import multiprocessing
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger
from rich.console import Console

from etl import api, datatypes, tls, wasm_auth
from etl.budget import HostBudget, StateDirError, ledger_path
from etl.client import ClientConfig, NepseClient
from etl.datatypes.base import DataType, ListingProblem, Scope, Unit, rows_to_table
from etl.datatypes.securities import SECURITIES
from etl.diskspace import disk_full_message, is_disk_full
from etl.errors import DatabaseNotUsable, DiskFull
from etl.eventlog import EventRecorder, events_path
from etl.events import HostRate, emit
from etl.extract import ExtractJob, ExtractProcesses, type_failure
from etl.failures import FetchError, advice_for
from etl.logs import LogHub, LogRecord, configure_parent_logging
from etl.plan import FetchPlan, ResumeState, expected_requests, job_fingerprint, plan_type
from etl.procs import children_start_deaf_to_ctrl_c
from etl.progress import choose_mode, make_display, print_verbatim, render_summary
from etl.rawzone import RawZone
from etl.report import RunFacts, build_report, record_run, write_report
from etl.settings import ConfigError, Settings, source_of

# The load and the HTML report (and polars with them) are imported where they run: during the extract the
# parent holds only what it needs, which lowers the run's peak memory (measured ~50 MB).
if TYPE_CHECKING:
    from etl.load import LoadCounts


class HostProblem(Exception):
    """The API host could not give us the company list: the run cannot start."""


@dataclass(kw_only=True)
class RunContext(RunFacts):
    """The run's facts, and where it writes and speaks."""

    zone: RawZone
    console: Console
    token_scheme: wasm_auth.TokenScheme = field(default_factory=lambda: wasm_auth.TokenScheme(None))


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


# ---- output directory


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Make sure the output directory is writable and that no other run is using it."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
        handle = open(output / ".lock", "a+")  # noqa: SIM115 - held for the whole run
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(disk_full_message(output)) from None
        raise ConfigError(f"cannot write to output directory {output} ({exc.strerror}); "
                          "choose another --output or fix its permissions") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"another backfill is running on {output}; wait for it or choose another "
                              "--output") from None
        yield
    finally:
        handle.close()


# ---- listing the units: each scope the selected types iterate over, listed once by the parent


@dataclass
class Units:
    by_scope: dict[str, list[Unit]] = field(default_factory=dict)
    extras: dict[str, list[Unit]] = field(default_factory=dict)  # only for types that take every security
    problems: dict[str, str] = field(default_factory=dict)  # scope -> why it could not be listed

    def of(self, data_type: DataType) -> list[Unit]:
        scope = data_type.scope.name
        return self.by_scope[scope] + (self.extras.get(scope, []) if data_type.every_security else [])

    def keys(self) -> dict[str, list[Unit]]:
        """Every unit of each scope, extras included: what identifies the job for resuming."""
        return {scope: listed + self.extras.get(scope, []) for scope, listed in self.by_scope.items()}


def scopes_of(type_names: tuple[str, ...]) -> list[Scope]:
    """The scopes the selected types iterate over, in the order the types were named."""
    scopes: dict[str, Scope] = {}
    for name in type_names:
        scope = datatypes.get(name).scope
        if scope.list_units is not None:
            scopes.setdefault(scope.name, scope)
    return list(scopes.values())


async def _list_scopes(context: RunContext, budget: HostBudget, scopes: list[Scope]) -> dict[str, Any]:
    """scope name -> its Listing, or the FetchError or ListingProblem that stopped it."""
    outcomes: dict[str, Any] = {}
    await tls.complete_chain(context.settings, budget)
    async with NepseClient(ClientConfig.from_settings(context.settings), budget) as client:
        try:
            context.token_scheme = await wasm_auth.prepare(client, context.settings.output,
                                                            context.settings.budget_state_dir)
            client.use_token_scheme(context.token_scheme)
            for scope in scopes:
                assert scope.list_units is not None
                try:
                    outcomes[scope.name] = await scope.list_units(client, context.settings)
                except (FetchError, ListingProblem) as error:
                    outcomes[scope.name] = error
        finally:
            context.company_list_requests = client.stats.requests
    return outcomes


def list_units(context: RunContext, budget: HostBudget, scopes: list[Scope]) -> Units:
    """Each scope's units; a scope that cannot be listed fails only the types over it, unless none could be."""
    units = Units()
    try:
        outcomes = asyncio.run(_list_scopes(context, budget, scopes))
    except FetchError as error:  # before any listing (completing the TLS chain): every scope fails alike
        outcomes = {scope.name: error for scope in scopes}
    for scope in scopes:
        outcome = outcomes[scope.name]
        if isinstance(outcome, ListingProblem):
            units.problems[scope.name] = str(outcome)
            continue
        if isinstance(outcome, FetchError):
            if outcome.outcome == "tls_error":
                raise ConfigError(outcome.detail) from None
            units.problems[scope.name] = _listing_problem(context, scope, outcome)
            continue
        if outcome.rows is not None and scope.listing_type:
            _keep_listing(context, scope.listing_type, outcome.rows)
        units.by_scope[scope.name] = outcome.units
        units.extras[scope.name] = outcome.extras
    if units.problems and not units.by_scope:
        raise HostProblem("; ".join(units.problems.values()))
    return units


def _listing_problem(context: RunContext, scope: Scope, error: FetchError) -> str:
    host = context.settings.base_url
    scheme = context.token_scheme
    if error.refused_auth and scheme.reason:
        return (f"cannot authenticate with {host}: {scheme.reason}, so {scheme.stand_in} was used, and every "
                f"token it cleaned was refused (HTTP {error.status}, {error.attempts} attempts); NEPSE has likely "
                "changed how it scrambles tokens: re-run when css.wasm can be fetched")
    return f"cannot get the {scope.list_name} from {host}: {error.describe()}; {advice_for(error.outcome)}"


def _keep_listing(context: RunContext, data_type: DataType, rows: list[dict]) -> None:
    """A listing that is a type's data (the company list is the securities table) goes to the raw zone."""
    fetched_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    context.zone.write(context.zone.single_path(data_type.name), rows_to_table(rows, data_type, fetched_at),
                       {"type": data_type.name, "fetched_at": fetched_at, "run_id": context.run_id})


def plan_types(context: RunContext, type_names: tuple[str, ...], units: Units,
               resume_job: str | None) -> list[FetchPlan]:
    """A plan for each selected type whose scope could be listed."""
    selected = [datatypes.get(name) for name in type_names]
    return [plan_type(data_type, units.of(data_type), context.zone, context.settings, resume_job)
            for data_type in selected if data_type.scope.name in units.by_scope]


def unlisted_types(type_names: tuple[str, ...], units: Units) -> dict[str, dict[str, Any]]:
    """The failure of each type whose scope could not be listed."""
    failed: dict[str, dict[str, Any]] = {}
    for name in type_names:
        problem = units.problems.get(datatypes.get(name).scope.name)
        if problem is not None:
            logger.error(f"{name}: {problem}; re-run later to fetch it")
            failed[name] = type_failure(name, problem)
    return failed


# ---- dry run


def estimate(plans: list[FetchPlan], settings: Settings) -> tuple[int, float]:
    """(calls, seconds) at the current budget: the host rate, or a process's own pacing if slower."""
    calls_by_type = [_calls_for(plan, settings) for plan in plans]
    calls = sum(calls_by_type)
    auth_calls = 1 + math.ceil(calls / settings.max_rps / api.TOKEN_REFRESH_AFTER_S)
    seconds = max([(calls + auth_calls) / settings.max_rps] + [n * settings.pacing for n in calls_by_type])
    return calls + auth_calls, seconds


def _calls_for(plan: FetchPlan, settings: Settings) -> int:
    data_type = datatypes.get(plan.type_name)
    return sum(expected_requests(item, data_type, settings.page_size) for item in plan.items)


def print_plan(console: Console, plans: list[FetchPlan], settings: Settings, resuming: bool) -> None:
    since, until = settings.window
    console.print(f"Dry run: price window {since} to {until}; host budget {settings.max_rps:g} req/s"
                  + ("; resuming an interrupted run" if resuming else ""))
    for plan in plans:
        units = datatypes.get(plan.type_name).scope.name
        console.print(f"  {plan.type_name}: {len(plan.items):,} {units} to fetch, {len(plan.skipped):,} "
                      f"already complete, ~{_calls_for(plan, settings):,} calls")
    calls, seconds = estimate(plans, settings)
    listings = " and ".join(scope.list_name for scope in scopes_of(tuple(plan.type_name for plan in plans)))
    console.print(f"Total: ~{calls:,} calls, about {timedelta(seconds=round(seconds))} at the current budget. "
                  f"Nothing was fetched but the {listings}.")


# ---- extract


def run_extract(context: RunContext, plans: list[FetchPlan], budget: HostBudget, hub: LogHub,
                ctx: multiprocessing.context.BaseContext, job_id: str) -> dict[str, dict[str, Any]]:
    jobs = [ExtractJob(plan.type_name, plan.items, len(plan.skipped), context.settings, job_id, context.run_id,
                    context.token_scheme, member) for member, plan in enumerate(plans)]
    for member, plan in enumerate(plans):  # before any process starts, so the first one up takes no more than its share
        budget.set_remaining(_calls_for(plan, context.settings), member=member)
    processes = ExtractProcesses(ctx, budget, hub.queue)
    results: dict[str, dict[str, Any]] = {}
    rate = budget.rate
    try:
        processes.start(jobs)
        while processes.running:
            try:
                results.update(processes.collect(timeout=0.2))
                if budget.rate != rate:
                    # When it happened, to 0.2 s: the process that raises the rate reports it only once its
                    # own queued start comes round, which can be seconds later.
                    rate = budget.rate
                    emit(HostRate(rate=round(rate, 3)))
            except KeyboardInterrupt:
                if context.interrupted:
                    logger.warning("second Ctrl-C: abandoning the requests in flight")
                    break
                context.interrupted = True
                processes.stop_event.set()
                logger.warning("Ctrl-C: no new requests; finishing those in flight (Ctrl-C again to abandon them)")
    finally:
        processes.kill()
    return results


# ---- the run


def selected_types(settings: Settings) -> tuple[str, ...]:
    """The run's types, checked against the registry: every registered type unless --types names some."""
    try:
        return tuple(data_type.name for data_type in datatypes.select(settings.types))
    except ValueError as exc:
        raise ConfigError(f"{source_of(settings, 'types')}={','.join(settings.types)!r}: {exc}") from None


def run(settings: Settings, console: Console | None = None) -> int:
    console = console or Console(highlight=False)
    if settings.report_only:
        return report_only(settings, console)
    type_names = selected_types(settings)
    with output_lock(settings.output):
        context = RunContext(settings, new_run_id(), zone=RawZone(settings.output), console=console)
        if not settings.extract_only and settings.db_path.exists():
            from etl.load import probe_write_lock

            try:
                probe_write_lock(settings.db_path)  # a locked or foreign database is refused before fetching
            except DatabaseNotUsable as problem:
                write_report(build_report(context, {}, {}, 0, type_names, fatal_error=str(problem)),
                             settings.output / "runs")
                raise
        mode = choose_mode(settings.quiet)
        configure_parent_logging(context.log_path, console_level=None)
        display = make_display(mode, None if mode == "live" else console, settings.max_rps, settings.verbose)
        events = EventRecorder(events_path(settings.output / "runs", context.run_id))
        with process_context(settings.start_method) as ctx, events, \
                LogHub(context.log_path, on_record=_both(display.handle, events.handle), ctx=ctx) as hub, \
                display, _maybe_demo(settings) as url:
            context.settings = settings = replace(settings, base_url=url) if url else settings
            report = _run_stages(context, hub, ctx, type_names)
        if report is None:
            return 0
        try:
            write_report(report, settings.output / "runs")
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            report["report_path"] = f"not written: {disk_full_message(settings.output / 'runs')}"
        if not settings.extract_only:
            record_run(settings.db_path, report)
        render_summary(report, console)
        if settings.html_report:
            _write_html_report(settings, report, console)
        return int(report["exit_code"])


# What a fork server imports once, before it forks the log manager and every type's process: they start with
# these modules loaded instead of importing them each (~0.5 s of CPU per type's process under spawn).
FORKSERVER_PRELOAD = ["etl.extract", "etl.logs"]


@contextlib.contextmanager
def process_context(start_method: str) -> Iterator[BaseContext]:
    """The multiprocessing context of a run. A fork server preloads the modules its children run, and is
    stopped when the run's processes are done: no process outlives the run, and its CPU (and its children's)
    is counted in the run's own, as the other start methods' is."""
    ctx = multiprocessing.get_context(start_method)
    if start_method != "forkserver":
        yield ctx
        return
    from multiprocessing import forkserver

    ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
    try:
        yield ctx
    finally:
        stop = getattr(forkserver._forkserver, "_stop", None)  # no public way to stop it
        if stop is not None:
            with contextlib.suppress(OSError, ChildProcessError):
                stop()


def _both(first: Callable[[LogRecord], None], second: Callable[[LogRecord], None]) -> Callable[[LogRecord], None]:
    def handle(record: LogRecord) -> None:
        second(record)  # the event record first: a display failure must not lose it
        first(record)

    return handle


def _write_html_report(settings: Settings, report: dict[str, Any], console: Console) -> None:
    """The run's data is saved whatever happens here: a report that cannot be written is a warning."""
    from etl.htmlreport import REPORT_NAME, build_html_report

    try:
        path = build_html_report(settings.output, report)
    except (OSError, sqlite3.Error) as exc:
        logger.error(f"could not write the HTML report: {exc}")
        print_verbatim(console, f"warning: could not write {settings.output / REPORT_NAME} ({exc}); the data is "
                        "saved, try --report-only")
        return
    print_verbatim(console, f"Report: {path}")


def report_only(settings: Settings, console: Console) -> int:
    """--report-only: write the HTML report from the database and the newest run report; fetch nothing."""
    from etl.htmlreport import REPORT_NAME, build_html_report

    runs = settings.output / "runs"
    if not settings.db_path.is_file() and not any(runs.glob("*.json")):
        raise ConfigError(f"nothing to report in {settings.output}: no nepse.db and no run report; run a backfill "
                          "first (or point --output at the directory of one)")
    try:
        path = build_html_report(settings.output)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"cannot read {settings.db_path} ({exc}); check the file, or --load-only to rebuild "
                          "it from the raw zone") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {settings.output / REPORT_NAME} ({exc.strerror or exc}); check the "
                          "directory's permissions or choose another --output") from None
    print_verbatim(console, f"Report: {path}")
    return 0


@contextlib.contextmanager
def _maybe_demo(settings: Settings) -> Iterator[str | None]:
    if not settings.demo:
        yield None
        return
    from etl.simulator import SimConfig, SimulatorProcess

    config = SimConfig(seed=settings.demo_seed, n_companies=settings.demo_companies)
    with SimulatorProcess(config) as simulator:
        logger.info(f"demo: NEPSE simulator running at {simulator.base_url}")
        yield simulator.base_url


def _run_stages(context: RunContext, hub: LogHub, ctx: multiprocessing.context.BaseContext,
                type_names: tuple[str, ...]) -> dict | None:
    settings = context.settings
    extract: dict[str, dict[str, Any]] = {}
    state = ResumeState(settings.output)
    job_id = None
    throttle_events = 0
    if not settings.load_only:
        budget = open_budget(settings, ctx)
        with budget:
            outcome = _extract_stage(context, hub, ctx, budget, state, type_names)
        if outcome is None or isinstance(outcome, dict):
            return outcome
        extract, job_id = outcome
        throttle_events = budget.throttle_events
    loads: dict[str, LoadCounts] = {}
    fatal = ""
    if settings.load_only and not context.zone.root.is_dir():
        raise ConfigError(f"nothing to load: no raw zone at {context.zone.root}; run without --load-only first "
                          "(or point --output at an earlier run's directory)")
    if not settings.extract_only:
        load_types = [SECURITIES] + [datatypes.get(name) for name in type_names]
        try:
            from etl.load import load_all

            load_all(settings.db_path, context.zone, load_types, into=loads, busy_timeout_s=settings.db_busy_timeout)
        except KeyboardInterrupt:
            context.interrupted = True
            logger.warning("Ctrl-C during the load: the table being loaded was rolled back; the raw zone is "
                           "intact, run with --load-only to finish")
        except DatabaseNotUsable as problem:
            fatal = f"load not finished: {problem}"
            logger.error(fatal)
    report = build_report(context, extract, loads, throttle_events, type_names, fatal_error=fatal or None)
    if job_id is not None and report["exit_code"] == 0:
        state.finish()
    return report


def open_budget(settings: Settings, ctx: multiprocessing.context.BaseContext) -> HostBudget:
    """This run's share of the host budget, joined with every other run on this machine using the host."""
    try:
        with children_start_deaf_to_ctrl_c():  # its lock may start multiprocessing's resource tracker
            return HostBudget(settings.max_rps, settings.host_floor_rps, settings.recover_after, ctx,
                              state_file=ledger_path(settings.budget_state_dir, settings.base_url),
                              pacing_s=settings.pacing)
    except StateDirError as exc:
        raise ConfigError(exc.strerror) from None


def _extract_stage(context: RunContext, hub: LogHub, ctx: multiprocessing.context.BaseContext, budget: HostBudget,
                   state: ResumeState, type_names: tuple[str, ...]
                   ) -> tuple[dict[str, dict[str, Any]], str] | dict | None:
    """The lists of units, plan, extract: (results, job id), or a failed run's report, or None after a dry run."""
    settings = context.settings
    removed = context.zone.remove_leftovers()
    if removed:
        logger.info(f"removed {removed} temporary files left by an interrupted run")
    try:
        units = list_units(context, budget, scopes_of(type_names))
    except HostProblem as problem:
        logger.error(str(problem))
        return build_report(context, {}, {}, 0, type_names, fatal_error=str(problem))
    fingerprint = job_fingerprint(settings, units.keys())
    if settings.dry_run:
        current = state.read() or {}
        resume_job = current.get("job_id") if current.get("fingerprint") == fingerprint else None
        print_plan(context.console, plan_types(context, type_names, units, resume_job), settings,
                   resume_job is not None)
        return None
    job_id, resuming = state.begin(fingerprint, context.run_id)
    if resuming:
        logger.info(f"resuming job {job_id}: what it completed is skipped")
        if not settings.quiet:
            context.console.print("Resuming the interrupted run: companies it already completed are skipped.")
    plans = plan_types(context, type_names, units, job_id if resuming else None)
    extract = run_extract(context, plans, budget, hub, ctx, job_id)
    extract.update(unlisted_types(type_names, units))
    return extract, job_id
