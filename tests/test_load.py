"""The loader on its own: counts, idempotence, bad files and contract-breaking records."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl.datatypes import REGISTRY
from etl.datatypes.base import Company
from etl.extract import rows_to_table
from etl.load import DatabaseNotUsable, load_all, open_database, upsert_sql
from etl.rawzone import RawZone

PRICES = REGISTRY["prices"]
FETCHED = "2026-11-01T00:00:00+00:00"


def price(day: int, close: float = 100.0, high: float = 101.0, low: float = 99.0) -> dict:
    return {"businessDate": f"2026-10-{day:02d}", "closePrice": close, "highPrice": high, "lowPrice": low,
            "totalTradedQuantity": 10, "totalTradedValue": 1000.0, "totalTrades": 2}


def write_prices(zone: RawZone, symbol: str, records: list[dict], fetched_at: str = FETCHED) -> Path:
    rows = PRICES.parse(records, Company(1, symbol))
    return zone.write(zone.partition_path("prices", symbol), rows_to_table(rows, PRICES, fetched_at), {})


def load(tmp_path: Path, zone: RawZone):
    return load_all(tmp_path / "nepse.db", zone, [PRICES])["prices"]


def test_counts_new_updated_unchanged_and_reload_changes_nothing(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    write_prices(zone, "AAA", [price(1), price(2)])
    first = load(tmp_path, zone)
    assert (first.new, first.updated, first.unchanged) == (2, 0, 0)
    again = load(tmp_path, zone)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 2)
    write_prices(zone, "AAA", [price(1), price(2, close=100.5), price(3)], "2026-11-02T00:00:00+00:00")
    third = load(tmp_path, zone)
    assert (third.new, third.updated, third.unchanged) == (1, 1, 1)
    rows = sqlite3.connect(tmp_path / "nepse.db").execute(
        "SELECT business_date, close FROM prices ORDER BY 1").fetchall()
    assert rows == [("2026-10-01", 100.0), ("2026-10-02", 100.5), ("2026-10-03", 100.0)]


def test_contract_breaking_records_are_quarantined_with_their_reason(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    bad_date = {**price(4), "businessDate": None}
    write_prices(zone, "BBB", [price(1), price(2, close=-5), price(3, high=90, low=95), bad_date,
                               {**price(5), "closePrice": "abc"}])
    counts = load(tmp_path, zone)
    assert (counts.new, counts.quarantined) == (1, 4)
    db = sqlite3.connect(tmp_path / "nepse.db")
    reasons = sorted(row[0] for row in db.execute("SELECT reason FROM quarantine"))
    assert reasons == ["closePrice 'abc' is not a number", "high < low", "negative close", "no business_date"]
    assert load(tmp_path, zone).quarantined == 4
    assert db.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 4  # not duplicated on reload


def test_a_value_that_does_not_cast_is_quarantined_not_fatal(tmp_path: Path) -> None:
    """A file written by something else, with close as text: good rows load, the bad one is kept aside."""
    zone = RawZone(tmp_path)
    path = zone.partition_path("prices", "CCC")
    path.parent.mkdir(parents=True)
    table = pa.table({"symbol": ["CCC", "CCC"], "business_date": ["2026-10-01", "2026-10-02"],
                      "close": ["101.5", "n/a"], "high": [102.0, 103.0], "low": [100.0, 99.0]})
    pq.write_table(table, path)
    counts = load(tmp_path, zone)
    assert (counts.new, counts.quarantined) == (1, 1)
    reason = sqlite3.connect(tmp_path / "nepse.db").execute("SELECT reason FROM quarantine").fetchone()[0]
    assert reason == "unparseable close"


def test_corrupt_and_foreign_files_are_moved_aside_and_the_rest_loads(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    write_prices(zone, "GOOD", [price(1)])
    corrupt = zone.partition_path("prices", "BROKEN")
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"PAR1 this is not parquet at all")
    foreign = zone.partition_path("prices", "OTHER")
    foreign.parent.mkdir(parents=True)
    pq.write_table(pa.table({"a": [1], "b": ["x"]}), foreign)
    counts = load(tmp_path, zone)
    assert counts.new == 1
    assert sorted(Path(p).parent.name for p in counts.bad_files) == ["symbol=BROKEN", "symbol=OTHER"]
    assert not corrupt.exists() and not foreign.exists()
    moved = tmp_path / "quarantine" / "files" / "prices" / "symbol=BROKEN" / "part.parquet"
    assert moved.exists()
    assert "not a readable Parquet file" in moved.with_name("part.parquet.reason.txt").read_text()
    assert "no column symbol" in (moved.parent.parent / "symbol=OTHER" / "part.parquet.reason.txt").read_text()


def test_temporary_leftovers_are_never_loaded(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    path = write_prices(zone, "AAA", [price(1)])
    (path.parent / ".part.parquet.999.tmp").write_bytes(b"half a file")
    assert load(tmp_path, zone).new == 1
    assert zone.remove_leftovers() == 1


def test_a_database_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE notes (x)")
    connection.commit()
    connection.close()
    with pytest.raises(DatabaseNotUsable, match="did not create"):
        open_database(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_text("hello")
    with pytest.raises(DatabaseNotUsable, match="not an SQLite database"):
        open_database(garbage)


def test_a_locked_database_is_reported(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    write_prices(zone, "AAA", [price(1)])
    load(tmp_path, zone)
    holder = sqlite3.connect(tmp_path / "nepse.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseNotUsable, match="locked"):
            load(tmp_path, zone)
    finally:
        holder.execute("ROLLBACK")


def test_upsert_sql_is_parameterised_and_only_rewrites_changed_rows() -> None:
    sql = upsert_sql(PRICES)
    assert sql.count("?") == len(PRICES.columns)
    assert "ON CONFLICT (symbol, business_date) DO UPDATE" in sql
    assert "WHERE prices.close IS NOT excluded.close" in sql


def test_a_symbol_that_moves_to_a_new_security_id_replaces_the_old_row(tmp_path: Path) -> None:
    from etl.datatypes.securities import SECURITIES

    zone = RawZone(tmp_path)

    def company_list(records: list[dict], fetched_at: str) -> None:
        table = rows_to_table(SECURITIES.parse(records), SECURITIES, fetched_at)
        zone.write(zone.securities_path, table, {})

    company_list([{"id": 1, "symbol": "ABC", "status": "A"}, {"id": 2, "symbol": "XYZ", "status": "A"}], FETCHED)
    load_all(tmp_path / "nepse.db", zone, [SECURITIES])
    company_list([{"id": 3, "symbol": "ABC", "status": "A"}, {"id": 2, "symbol": "XYZ", "status": "D"}],
                 "2026-11-02T00:00:00+00:00")
    counts = load_all(tmp_path / "nepse.db", zone, [SECURITIES])["securities"]
    rows = sqlite3.connect(tmp_path / "nepse.db").execute(
        "SELECT security_id, symbol, status FROM securities ORDER BY 1").fetchall()
    assert rows == [(2, "XYZ", "D"), (3, "ABC", "A")]
    assert (counts.new, counts.updated) == (1, 1)
