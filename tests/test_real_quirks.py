"""Quirks of the real NEPSE data (found by running the CLI against real-shaped answers), each on small
synthetic rows shaped like it."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from etl.datatypes import REGISTRY
from etl.datatypes.base import Company, FetchWindow
from etl.extract import _write_unit_file, rows_to_table
from etl.load import load_all
from etl.plan import WorkItem
from etl.rawzone import RawZone

PRICES = REGISTRY["prices"]
COMPANY = Company(397, "ADBL")


def day(iso: str, close: float, high: float, low: float, volume: float = 100.0) -> dict:
    return {"businessDate": iso, "closePrice": close, "highPrice": high, "lowPrice": low,
            "totalTradedQuantity": volume, "totalTradedValue": 0.0, "totalTrades": None}


def fetch_into(zone: RawZone, records: list[dict], since: str, until: str, fetched_at: str) -> Path:
    path = zone.partition_path("prices", COMPANY.symbol)
    table = rows_to_table(PRICES.parse(records, COMPANY), PRICES, fetched_at)
    item = WorkItem(COMPANY, FetchWindow(date.fromisoformat(since), date.fromisoformat(until)))
    _write_unit_file(zone, path, table, {"type": "prices"}, item, PRICES)
    return path


def issues(db: Path) -> list[tuple[str, str, str]]:
    return sorted(sqlite3.connect(db).execute("SELECT key, rule, detail FROM data_issues").fetchall())


def test_an_incremental_run_keeps_a_day_published_twice_with_different_values_flagged(tmp_path: Path) -> None:
    # Real files publish some days twice with different values (ADBL 2011-01-03, 18 such days in ten
    # years). An incremental run that merges new days into the saved file must not collapse those
    # copies, or the next load forgets the flag and the copy that was not stored.
    zone = RawZone(tmp_path)
    first = [day("2011-01-04", 139.0, 140.0, 136.0),
             day("2011-01-03", 137.0, 140.0, 135.0), day("2011-01-03", 131.0, 131.0, 124.0, volume=4755.0),
             day("2011-01-02", 133.0, 134.0, 130.0)]
    fetch_into(zone, first, "2011-01-01", "2011-01-04", "2026-11-01T00:00:00+00:00")
    db = tmp_path / "nepse.db"
    load_all(db, zone, [PRICES])
    before = issues(db)
    assert [(key, rule) for key, rule, _ in before] == [("ADBL|2011-01-03", "duplicate_differs")]
    assert "131.0" in before[0][2]

    path = fetch_into(zone, [day("2011-01-05", 141.0, 142.0, 139.0)], "2011-01-05", "2011-01-06",
                      "2026-11-02T00:00:00+00:00")
    assert pq.read_table(path).num_rows == 5  # the new day joins all four saved rows
    counts = load_all(db, zone, [PRICES])["prices"]
    assert (counts.new, counts.updated, counts.flagged) == (1, 0, 1)
    assert issues(db) == before


def test_a_refetched_day_replaces_every_saved_copy_of_it(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    twice = [day("2011-01-03", 137.0, 140.0, 135.0), day("2011-01-03", 131.0, 131.0, 124.0)]
    fetch_into(zone, [*twice, day("2011-01-02", 133.0, 134.0, 130.0)], "2011-01-01", "2011-01-03",
               "2026-11-01T00:00:00+00:00")
    path = fetch_into(zone, [day("2011-01-03", 137.0, 140.0, 135.0)], "2011-01-03", "2011-01-03",
                      "2026-11-02T00:00:00+00:00")
    saved = pq.read_table(path).to_pylist()
    assert sorted((row["business_date"], row["close"]) for row in saved) == [("2011-01-02", 133.0),
                                                                             ("2011-01-03", 137.0)]
    db = tmp_path / "nepse.db"
    load_all(db, zone, [PRICES])
    assert issues(db) == []
