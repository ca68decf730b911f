"""`<output>/report.html`: one self-contained page on the last run, coverage, data quality and the database.

`gather.py` computes the data behind each chart (pure functions, tested on their own), `charts.py` turns
it into Vega-Lite specs, `page.py` writes the page with the Vega JavaScript inlined.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from etl.eventlog import events_path, read_events
from etl.htmlreport import charts, gather
from etl.htmlreport.page import Section, facts, note, render_page, table
from etl.report import not_loaded_note

REPORT_NAME = "report.html"
RUN_TABLE_COLUMNS = {
    "companies_ok": "ok", "companies_failed": "failed", "companies_skipped": "skipped", "new": "new",
    "updated": "updated", "quarantined": "quarantined", "flagged": "flagged", "requests": "requests",
    "retries": "retries", "throttle_events": "throttled", "achieved_rps": "req/s", "elapsed_s": "elapsed s",
}


def latest_run_report(runs_dir: Path) -> dict[str, Any] | None:
    """The newest run report in ``runs_dir`` (run ids start with their UTC time), skipping unreadable ones."""
    for path in sorted(runs_dir.glob("*.json"), reverse=True):
        with contextlib.suppress(OSError, ValueError):
            report = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(report, dict) and "run_id" in report:
                return report
    return None


@contextlib.contextmanager
def _read_only(db_path: Path) -> Iterator[sqlite3.Connection | None]:
    if not db_path.is_file():
        yield None
        return
    connection = sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
    try:
        yield connection
    finally:
        connection.close()


def build_html_report(output: Path, run_report: Mapping[str, Any] | None = None) -> Path:
    """Write ``<output>/report.html`` (atomically) for ``run_report``, or the newest run in ``output/runs``."""
    runs_dir = output / "runs"
    report = run_report if run_report is not None else latest_run_report(runs_dir)
    db_path = output / "nepse.db"
    with _read_only(db_path) as connection:
        sections = [
            run_section(report, runs_dir),
            coverage_section(connection),
            quality_section(connection, report),
            database_section(connection, db_path, not_loaded_note(report)),
        ]
    subtitle = (f"run {report['run_id']}, finished {report.get('finished_at', '?')}" if report
                else "no run recorded yet")
    text = render_page("nepse-etl report", f"{subtitle} · {output.resolve()}", sections, canvas=["chart-coverage"])
    target = output / REPORT_NAME
    temporary = target.with_name(REPORT_NAME + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, target)
    return target


def run_section(report: Mapping[str, Any] | None, runs_dir: Path) -> Section:
    section = Section("run", "The run", "Request starts per second, stacked by data type, against the host "
                      "budget (dashed; it steps down when the server throttles). Below: retries, throttle "
                      "halvings and failed companies.")
    if report is None:
        section.html_after = note("No run report in " + str(runs_dir) + " yet.")
        return section
    activity = gather.run_activity(read_events(events_path(runs_dir, str(report["run_id"]))),
                                   float(report.get("budget_rps") or 0))
    types = report.get("types") or {}
    section.html_before = facts({
        "run": str(report["run_id"]), "exit code": str(report.get("exit_code", "?")),
        "elapsed": f"{float(report.get('elapsed_s') or 0):,.1f} s",
        "requests": f"{sum(int(entry.get('requests') or 0) for entry in types.values()):,}",
        "host budget": f"{report.get('budget_rps', '?')} req/s",
        "throttle events": str(report.get("throttle_events", 0)),
    })
    if activity.requests:
        section.charts["chart-run"] = charts.run_chart(activity)
        if activity.marks.is_empty():
            section.html_before += note("No retries, no throttling and no failed companies in this run.")
    else:
        section.html_before += note("This run made no requests (or its event record "
                                   f"{events_path(runs_dir, str(report['run_id'])).name} is missing).")
    rows = [{"type": name, **{label: entry.get(key) for key, label in RUN_TABLE_COLUMNS.items()}}
            for name, entry in types.items()]
    if rows:
        section.html_after += table(pl.DataFrame(rows), numeric=list(RUN_TABLE_COLUMNS.values()))
    return section


def coverage_section(connection: sqlite3.Connection | None) -> Section:
    section = Section("coverage", "Coverage", "Each row is a company (equities grouped by sector, debentures, "
                      "funds and other kinds of security by kind), each column a month. The shade is the share "
                      "of the market's trading days (the days on which most active securities traded) that "
                      "have a price row: red cells are gaps. Thinly traded kinds are pale in every month.")
    cells = gather.coverage(connection) if connection is not None else pl.DataFrame()
    if cells.is_empty():
        section.html_after = note("No prices in the database yet.")
        return section
    section.charts["chart-coverage"] = charts.coverage_chart(cells)
    months = cells.group_by("symbol").agg(pl.col("share").min())
    section.intro += (f" {cells['symbol'].n_unique():,} companies, {cells['month'].n_unique():,} months; "
                      f"{months.filter(pl.col('share') < 0.5).height:,} companies have a month under half.")
    return section


def quality_section(connection: sqlite3.Connection | None, report: Mapping[str, Any] | None) -> Section:
    section = Section("quality", "Data quality", "Rows that could not be stored are quarantined (the "
                      "quarantine table); rows stored but that look wrong are flagged (the data_issues table).")
    counts = gather.quality_counts(connection) if connection is not None else pl.DataFrame()
    if counts.is_empty():
        section.html_after = note("No quarantined or flagged rows.")
    else:
        section.charts["chart-quality"] = charts.quality_chart(counts)
    if connection is not None and not gather.has_table(connection, "data_issues"):
        section.html_after += note("This database has no data_issues table: no plausibility flags recorded.")
    failures = gather.latest_failures(report)
    if failures.is_empty():
        section.html_after += note("The last run had no failures.")
        return section
    commands = "\n".join(gather.retry_commands(report))
    section.html_after += (f"<h3>Latest failures ({failures.height:,})</h3>"
                           + table(failures, numeric=["attempts"])
                           + "<p>Retry only what failed:</p><pre>" + html.escape(commands) + "</pre>")
    return section


def database_section(connection: sqlite3.Connection | None, db_path: Path, not_loaded: str | None = None) -> Section:
    """`not_loaded`: what the run left the database, when it did not load (report.not_loaded_note)."""
    section = Section("database", "The database at a glance")
    if not_loaded is not None:
        section.html_before = note(f"The database was {not_loaded}.")
    if connection is None:
        section.html_after = note(f"No database at {db_path} yet.")
        return section
    glance = gather.database_glance(connection)
    section.html_before += facts({"file": str(db_path), "size": _megabytes(gather.database_size(db_path)),
                                  "tables": str(glance.height), "rows": f"{int(glance['rows'].sum()):,}"})
    section.html_after += table(glance, headers={"date_column": "date column"}, numeric=["rows"])
    return section


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"
