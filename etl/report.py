"""The run report: `<output>/runs/<run_id>.json` and a row in the `runs` table."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

TYPE_DEFAULTS: dict[str, Any] = {
    "companies_total": 0, "companies_ok": 0, "companies_failed": 0, "companies_skipped": 0,
    "rows_fetched": 0, "new": 0, "updated": 0, "unchanged": 0, "quarantined": 0, "flagged": 0, "flagged_by_rule": {},
    "requests": 0, "retries": 0, "throttle_events": 0, "achieved_rps": 0.0, "elapsed_s": 0.0, "finished_at": "",
    "errors": [],
}


def exit_code_for(report: dict[str, Any]) -> int:
    if report.get("interrupted"):
        return EXIT_INTERRUPTED
    failed = any(entry.get("companies_failed") or entry.get("errors") for entry in (report.get("types") or {}).values())
    return EXIT_FAILURES if failed or report.get("bad_files") or report.get("fatal_error") else EXIT_OK


def write_report(report: dict[str, Any], runs_dir: Path) -> Path:
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{report['run_id']}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    os.replace(temporary, path)
    return path


def record_run(db_path: Path, report: dict[str, Any]) -> None:
    """Add the run to the `runs` table (skipped when there is no database to add it to)."""
    if not db_path.exists():
        return
    connection = sqlite3.connect(db_path, timeout=5.0)
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
    finally:
        connection.close()
