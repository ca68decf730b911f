#!/usr/bin/env python3
"""Check that a backfill produced a sane database: every table present, every type populated."""

from __future__ import annotations

import argparse
import sqlite3
import sys

CHECKS = {
    "securities": "SELECT count(*) FROM securities",
    "prices": "SELECT count(DISTINCT symbol) FROM prices",
    "reports": "SELECT count(DISTINCT symbol) FROM reports",
    "dividends": "SELECT count(DISTINCT symbol) FROM dividends",
    "profiles": "SELECT count(DISTINCT symbol) FROM profiles",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("database")
    parser.add_argument("--companies", type=int, required=True, help="companies the run was limited to")
    args = parser.parse_args()
    connection = sqlite3.connect(f"file:{args.database}?mode=ro", uri=True)
    problems = []
    for table, query in CHECKS.items():
        count = connection.execute(query).fetchone()[0]
        print(f"{table}: {count}")
        if count == 0 or (table in ("prices", "profiles") and count != args.companies):
            problems.append(f"{table}: {count}")
    duplicates = connection.execute(
        "SELECT count(*) FROM (SELECT symbol, business_date FROM prices GROUP BY 1, 2 HAVING count(*) > 1)"
    ).fetchone()[0]
    if duplicates:
        problems.append(f"prices: {duplicates} duplicate keys")
    if problems:
        print("smoke check failed: " + "; ".join(problems), file=sys.stderr)
        return 1
    print("smoke check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
