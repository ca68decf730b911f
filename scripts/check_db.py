#!/usr/bin/env python3
"""Check that a backfill produced a sane database: every table present and populated, the NEPSE index
among the indices, and a clean last run.

A company that never traded has no price row (most debentures, as on the real market), so prices are
checked through the run itself: the newest run in `runs` fetched every company of every type, none failed,
and it exited 0.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys

CHECKS = {
    "securities": "SELECT count(*) FROM securities",
    "prices": "SELECT count(DISTINCT symbol) FROM prices",
    "reports": "SELECT count(DISTINCT symbol) FROM reports",
    "dividends": "SELECT count(DISTINCT symbol) FROM dividends",
    "profiles": "SELECT count(DISTINCT symbol) FROM profiles",
    "indices": "SELECT count(DISTINCT index_id) FROM indices",
}
NOT_PER_COMPANY = ("securities", "indices")  # tables whose count is not bounded by the companies of the run
NEPSE_INDEX_ID = 58  # etl.api.NEPSE_INDEX_ID; this script reads the database only
# Types fetched once per company of the run: each must have done exactly --companies of them.
PER_COMPANY = ("prices", "reports", "dividends", "profiles")


def table_problems(connection: sqlite3.Connection, companies: int) -> list[str]:
    problems = []
    for table, query in CHECKS.items():
        count = connection.execute(query).fetchone()[0]
        print(f"{table}: {count}")
        if count == 0 or count > max(companies, 1) and table not in NOT_PER_COMPANY:
            problems.append(f"{table}: {count}")
        elif table == "profiles" and count != companies:
            problems.append(f"profiles: {count} of {companies} companies")
    duplicates = connection.execute(
        "SELECT count(*) FROM (SELECT symbol, business_date FROM prices GROUP BY 1, 2 HAVING count(*) > 1)"
    ).fetchone()[0]
    if duplicates:
        problems.append(f"prices: {duplicates} duplicate keys")
    nepse_days = connection.execute("SELECT count(*) FROM indices WHERE index_id = ?", (NEPSE_INDEX_ID,)).fetchone()[0]
    print(f"NEPSE index days: {nepse_days}")
    if nepse_days == 0:
        problems.append("indices: no day of the NEPSE index")
    return problems


def last_run_problems(connection: sqlite3.Connection, companies: int) -> list[str]:
    row = connection.execute("SELECT exit_code, report FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    if row is None:
        return ["runs: no run recorded"]
    exit_code, report = row[0], json.loads(row[1])
    problems = [] if exit_code == 0 else [f"last run exited {exit_code}"]
    for name, entry in report["types"].items():
        done, failed = entry["companies_ok"], entry["companies_failed"]
        print(f"run {name}: {done} ok, {failed} failed")
        if failed or done != entry["companies_total"] or (name in PER_COMPANY and done != companies):
            problems.append(f"run {name}: {done} of {entry['companies_total']} ok, {failed} failed")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("database")
    parser.add_argument("--companies", type=int, required=True, help="companies the run was limited to")
    args = parser.parse_args()
    connection = sqlite3.connect(f"file:{args.database}?mode=ro", uri=True)
    problems = table_problems(connection, args.companies) + last_run_problems(connection, args.companies)
    if problems:
        print("smoke check failed: " + "; ".join(problems), file=sys.stderr)
        return 1
    print("smoke check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
