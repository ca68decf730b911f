"""The run's facts and its exit code: the report, `<output>/runs/<run_id>.json`, and a row in `runs`.

What the run did is decided here, once; the summary on screen (etl.progress) only renders it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.exitcodes import EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from etl.settings import Settings, settings_as_dict

if TYPE_CHECKING:
    from etl.load import LoadCounts

from loguru import logger

EXIT_MEANINGS = {EXIT_OK: "success", EXIT_FAILURES: "finished with some failures",
                 EXIT_USAGE: "bad usage or configuration", EXIT_INTERRUPTED: "interrupted"}

TYPE_DEFAULTS: dict[str, Any] = {
    "companies_total": 0, "companies_ok": 0, "companies_failed": 0, "companies_skipped": 0,
    "rows_fetched": 0, "new": 0, "updated": 0, "unchanged": 0, "quarantined": 0, "flagged": 0, "flagged_by_rule": {},
    "requests": 0, "retries": 0, "throttle_events": 0, "achieved_rps": 0.0, "elapsed_s": 0.0, "finished_at": "",
    "errors": [], "first_fetched": 0, "changes": [], "startup_cpu_s": 0.0, "pid": 0, "cpu_s": 0.0,
}


@dataclass
class RunFacts:
    """What the run itself knows; the stages' counts join it in `build_report`."""

    settings: Settings
    run_id: str
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    interrupted: bool = False
    company_list_requests: int = 0  # the parent's own calls (auth included)

    @property
    def log_path(self) -> Path:
        return self.settings.output / "logs" / f"{self.run_id}.log"


def build_report(run: RunFacts, extract: Mapping[str, Mapping[str, Any]], loads: Mapping[str, LoadCounts],
                 throttle_events: int, type_names: tuple[str, ...], fatal_error: str | None = None) -> dict[str, Any]:
    """The report of a run: its facts, each type's extract and load counts, and the exit code they imply."""
    finished = datetime.now(timezone.utc)
    types: dict[str, dict[str, Any]] = {}
    for name in type_names:
        entry = {**TYPE_DEFAULTS, **{k: v for k, v in extract.get(name, {}).items() if k in TYPE_DEFAULTS}}
        counts = loads.get(name)
        if counts is not None:
            entry.update(new=counts.new, updated=counts.updated, unchanged=counts.unchanged,
                         quarantined=counts.quarantined, flagged=counts.flagged,
                         flagged_by_rule=dict(counts.flagged_by_rule))
        types[name] = entry
    settings = run.settings
    report: dict[str, Any] = {
        "run_id": run.run_id,
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "elapsed_s": round((finished - run.started_at).total_seconds(), 3),
        "interrupted": run.interrupted,
        "arguments": settings_as_dict(settings),
        "database": str(settings.db_path),
        "report_path": str(settings.output / "runs" / f"{run.run_id}.json"),
        "log_path": str(run.log_path),
        "budget_rps": settings.max_rps,
        "throttle_events": throttle_events,
        "company_list_requests": run.company_list_requests,
        "types": types,
        "securities": loads["securities"].as_dict() if "securities" in loads else None,
        "load": {name: counts.as_dict() for name, counts in loads.items()},
        "bad_files": [path for counts in loads.values() for path in counts.bad_files],
    }
    if fatal_error is not None:
        report["fatal_error"] = fatal_error
    report["exit_code"] = exit_code_for(report)
    return report


def failed_companies(entry: Mapping[str, Any]) -> int:
    """A type's failed companies (its error list, where a sparse report has no count)."""
    if isinstance(entry.get("companies_failed"), (int, float)):
        return int(entry["companies_failed"])
    return len(entry.get("errors") or [])


def exit_code_for(report: Mapping[str, Any]) -> int:
    """The exit code a report implies: interrupted, else any failure, else success."""
    if report.get("interrupted"):
        return EXIT_INTERRUPTED
    failed = any(entry.get("companies_failed") or entry.get("errors") for entry in (report.get("types") or {}).values())
    return EXIT_FAILURES if failed or report.get("bad_files") or report.get("fatal_error") else EXIT_OK


def exit_code_of(report: Mapping[str, Any]) -> int:
    """The report's exit code, or the one it implies."""
    code = report.get("exit_code")
    return code if isinstance(code, int) else exit_code_for(report)


def exit_meaning(code: int) -> str:
    return EXIT_MEANINGS.get(code, "error")


def not_loaded_note(report: Mapping[str, Any] | None) -> str | None:
    """For a run that extracted only: what it left the database, and how to load it; None for any other run."""
    if not report or not (report.get("arguments") or {}).get("extract_only"):
        return None
    return ("not loaded by this run, which extracted only (--extract-only): its data waits in the raw zone; "
            "--load-only loads it")


def write_report(report: dict[str, Any], runs_dir: Path) -> Path:
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{report['run_id']}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    os.replace(temporary, path)
    return path


def record_run(db_path: Path, report: dict[str, Any]) -> None:
    """Add the run to the `runs` table (skipped when there is no database to add it to, or when
    another program holds it: the report file has it all)."""
    if not db_path.exists():
        return
    connection = sqlite3.connect(db_path, timeout=1.0)
    try:
        with connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, started_at TEXT, finished_at TEXT, "
                "elapsed_s REAL, exit_code INTEGER, interrupted INTEGER, types TEXT, requests INTEGER, "
                "rows_new INTEGER, rows_updated INTEGER, companies_failed INTEGER, report TEXT)"
            )
            columns = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
            if "rows_flagged" not in columns:  # a database made before flags existed
                connection.execute("ALTER TABLE runs ADD COLUMN rows_flagged INTEGER")
            types = report["types"]
            connection.execute(
                "INSERT OR REPLACE INTO runs (run_id, started_at, finished_at, elapsed_s, exit_code, interrupted, "
                "types, requests, rows_new, rows_updated, companies_failed, report, rows_flagged) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (report["run_id"], report["started_at"], report["finished_at"], report["elapsed_s"],
                 report["exit_code"], int(bool(report.get("interrupted"))), ",".join(types),
                 sum(entry["requests"] for entry in types.values()),
                 sum(entry["new"] for entry in types.values()),
                 sum(entry["updated"] for entry in types.values()),
                 sum(entry["companies_failed"] for entry in types.values()),
                 json.dumps(report, default=str),
                 sum(entry.get("flagged", 0) for entry in types.values())),
            )
    except sqlite3.Error as exc:
        logger.warning(f"run {report['run_id']} not added to the runs table of {db_path} ({exc}); its report "
                       f"is {report.get('report_path')}")
    finally:
        connection.close()
