"""The loader on its own: counts, idempotence, bad files and contract-breaking records."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl.datatypes import REGISTRY
from etl.datatypes.base import Company, rows_to_table
from etl.load import DatabaseNotUsable, ensure_quarantine_table, load_all, open_database, upsert_sql
from etl.rawzone import SCHEMA_VERSION, RawZone
from tests.raw_prices import FETCHED, PRICES, price, write_prices


def load(tmp_path: Path, zone: RawZone, busy_timeout_s: float = 5.0):
    return load_all(tmp_path / "nepse.db", zone, [PRICES], busy_timeout_s=busy_timeout_s)["prices"]


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


def test_only_rows_that_cannot_be_stored_are_quarantined(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    bad_date = {**price(4), "businessDate": None}
    unreadable = {**price(5), "closePrice": "abc"}
    write_prices(zone, "BBB", [price(1), price(2, close=-5), price(3, high=90, low=95), bad_date, unreadable])
    counts = load(tmp_path, zone)
    assert (counts.new, counts.quarantined, counts.flagged) == (3, 2, 2)
    db = sqlite3.connect(tmp_path / "nepse.db")
    reasons = sorted(row[0] for row in db.execute("SELECT reason FROM quarantine"))
    assert reasons == [f"closePrice 'abc' is not a number in record {json.dumps(unreadable, sort_keys=True)}",
                       "no business_date"]
    assert issues(tmp_path) == {("BBB|2026-10-02", "price_not_positive"), ("BBB|2026-10-02", "close_outside_range"),
                                ("BBB|2026-10-03", "high_below_low")}
    assert load(tmp_path, zone).quarantined == 2
    assert db.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 2  # not duplicated on reload


@pytest.mark.parametrize("with_a_corrupt_file", [False, True], ids=["one-read", "file-by-file"])
def test_a_quarantined_row_names_the_raw_file_and_row_it_came_from(tmp_path: Path, with_a_corrupt_file: bool) -> None:
    zone = RawZone(tmp_path)
    write_prices(zone, "AAA", [price(1), price(2)])
    if with_a_corrupt_file:  # sends the batch down the careful path, file by file
        corrupt = zone.partition_path("prices", "AAB")
        corrupt.parent.mkdir(parents=True)
        corrupt.write_bytes(b"not parquet")
    unreadable = {**price(4), "closePrice": "x"}
    write_prices(zone, "NICAD85/86", [price(1), {**price(2), "businessDate": None}, price(3), unreadable])
    assert load(tmp_path, zone).quarantined == 2
    rows = sqlite3.connect(tmp_path / "nepse.db").execute("SELECT reason, source FROM quarantine ORDER BY source")
    assert rows.fetchall() == [("no business_date", "raw/prices/symbol=NICAD85%2F86/part.parquet#1"),
                               (f"closePrice 'x' is not a number in record {json.dumps(unreadable, sort_keys=True)}",
                                "raw/prices/symbol=NICAD85%2F86/part.parquet#3")]


def issues(tmp_path: Path) -> set[tuple[str, str]]:
    rows = sqlite3.connect(tmp_path / "nepse.db").execute("SELECT key, rule FROM data_issues").fetchall()
    return set(rows)


def real_shaped_history() -> list[dict]:
    """Newest first, shaped like the real files: ordinary days, flat days (one price all day, shares
    traded), a zero-volume day, two days with high below low (close inside and outside the pair), a close
    outside the day's range, a price of zero on a traded day, a day sent twice alike and one sent twice
    with different values."""
    def day(n: int, close: float, high: float, low: float, volume: float = 1200, turnover: float | None = None,
            ) -> dict:
        value = round(volume * close, 2) if turnover is None else turnover
        return {"businessDate": f"2026-03-{n:02d}", "closePrice": close, "highPrice": high, "lowPrice": low,
                "totalTradedQuantity": volume, "totalTradedValue": value, "totalTrades": 7}

    records = [
        day(26, 612.0, 618.0, 601.5), day(25, 605.0, 605.0, 605.0, volume=40),  # flat
        day(24, 598.2, 580.0, 600.0),  # high < low, close outside both
        day(23, 590.0, 590.0, 590.0, volume=0, turnover=0.0),  # no trade, carried price
        day(22, 99.0, 99.0, 100.0),  # high < low, close equal to the high
        day(19, 1108.0, 1100.1, 1100.1, volume=7),  # close outside a flat range (a debenture-like day)
        day(18, 0.0, 0.0, 0.0, volume=20, turnover=12020.0),  # zero price on a traded day
        day(17, 560.0, 566.0, 551.0), day(17, 560.0, 566.0, 551.0),  # the same day twice, alike
        day(16, 555.0, 560.0, 550.0), day(16, 557.0, 561.0, 550.0),  # twice, different
        day(15, 552.0, 552.0, 552.0),  # flat
    ]
    return records


def test_every_published_row_is_stored_and_each_odd_one_listed_once(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    records = real_shaped_history()
    write_prices(zone, "REAL", records)
    counts = load(tmp_path, zone)
    db = tmp_path / "nepse.db"
    stored = {row[0] for row in sqlite3.connect(db).execute("SELECT business_date FROM prices")}
    assert stored == {record["businessDate"] for record in records}
    assert counts.quarantined == 0 and counts.new == len(stored)
    listed = sqlite3.connect(db).execute("SELECT key, rule, detail FROM data_issues ORDER BY key").fetchall()
    assert [(key, rule) for key, rule, _ in listed] == [
        ("REAL|2026-03-16", "duplicate_differs"),
        ("REAL|2026-03-18", "price_not_positive"),
        ("REAL|2026-03-19", "close_outside_range"),
        ("REAL|2026-03-22", "high_below_low"),
        ("REAL|2026-03-24", "high_below_low"),
    ]
    assert listed[3][2] == "high 99.0, low 100.0"
    assert "557.0" in listed[0][2] and "555.0" in listed[0][2]  # the copy not stored is kept in the detail
    assert counts.flagged == 5
    assert counts.flagged_by_rule == {"high_below_low": 2, "close_outside_range": 1, "price_not_positive": 1,
                                      "duplicate_differs": 1}
    before = table_dump(db)
    again = load(tmp_path, zone)
    assert (again.new, again.updated, again.issues_new) == (0, 0, 0)
    assert table_dump(db) == before  # first_seen included


def table_dump(db: Path) -> dict[str, list[tuple]]:
    connection = sqlite3.connect(db)
    return {table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("prices", "data_issues", "quarantine")}


def test_flags_reach_the_summary_the_run_report_and_the_runs_table(tmp_path: Path, run_cli) -> None:
    output = tmp_path / "output"
    write_prices(RawZone(output), "REAL", real_shaped_history())
    result = run_cli("--load-only", "--output", str(output), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "Flagged" in line).split()
    prices_line = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["prices"]).split()
    assert prices_line[header.index("Flagged")] == "5"
    report = json.loads(next((output / "runs").glob("*.json")).read_text())
    assert report["types"]["prices"]["flagged_by_rule"] == {
        "high_below_low": 2, "close_outside_range": 1, "price_not_positive": 1, "duplicate_differs": 1}
    flagged = sqlite3.connect(output / "nepse.db").execute("SELECT rows_flagged FROM runs").fetchall()
    assert flagged == [(5,)]


def test_rows_an_earlier_version_quarantined_are_stored_and_flagged(tmp_path: Path) -> None:
    """Before plausibility rules, a high below the low was quarantined: after the upgrade the row is in
    `prices` and `data_issues`, and its quarantine entry no longer claims it was not loaded."""
    zone = RawZone(tmp_path)
    unreadable = {**price(2), "closePrice": "abc"}
    write_prices(zone, "OLD", [price(1, high=90, low=95), unreadable])
    connection = open_database(tmp_path / "nepse.db")
    ensure_quarantine_table(connection)
    connection.execute("INSERT INTO quarantine VALUES ('prices', 'h1', 'OLD', 'high < low', '{}', NULL, 'x')")
    connection.execute("INSERT INTO quarantine VALUES ('dividends', 'h2', 'OLD', 'negative cash_pct', '{}', NULL, 'x')")
    connection.close()
    counts = load(tmp_path, zone)
    assert (counts.new, counts.flagged, counts.quarantined) == (1, 1, 1)
    db = sqlite3.connect(tmp_path / "nepse.db")
    assert sorted(db.execute("SELECT data_type, reason FROM quarantine")) == [
        ("dividends", "negative cash_pct"),  # another type's entries wait for that type's load
        ("prices", f"closePrice 'abc' is not a number in record {json.dumps(unreadable, sort_keys=True)}")]


def test_a_corrected_row_loses_its_issue_and_first_seen_is_kept(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    write_prices(zone, "AAA", [price(1, high=90, low=95), price(2, close=120)])
    load(tmp_path, zone)
    db = sqlite3.connect(tmp_path / "nepse.db")
    db.execute("UPDATE data_issues SET first_seen = '2026-01-01T00:00:00Z'")
    db.commit()
    write_prices(zone, "AAA", [price(1), price(2, close=130)], "2026-11-02T00:00:00+00:00")
    counts = load(tmp_path, zone)
    assert (counts.updated, counts.flagged, counts.flagged_by_rule) == (2, 1, {"close_outside_range": 1})
    assert db.execute("SELECT key, rule, detail, first_seen FROM data_issues").fetchall() == [
        ("AAA|2026-10-02", "close_outside_range", "close 130.0, low 99.0, high 101.0", "2026-01-01T00:00:00Z")]


def test_a_price_that_is_not_finite_is_stored_as_null_and_flagged_not_quarantined(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    odd = json.loads('[{"closePrice": NaN}, {"highPrice": Infinity, "lowPrice": -Infinity}]')
    # the first day twice in one answer, the same NaN in both copies: no duplicate_differs
    write_prices(zone, "AAA", [{**price(1), **odd[0]}, {**price(1), **odd[0]}, {**price(2), **odd[1]}, price(3)])
    counts = load(tmp_path, zone)
    assert (counts.new, counts.quarantined, counts.flagged) == (3, 0, 2)
    db = sqlite3.connect(tmp_path / "nepse.db")
    assert db.execute("SELECT business_date, close, high, low, volume FROM prices ORDER BY 1").fetchall() == [
        ("2026-10-01", None, 101.0, 99.0, 10.0), ("2026-10-02", 100.0, None, None, 10.0),
        ("2026-10-03", 100.0, 101.0, 99.0, 10.0)]
    # no high_below_low or close_outside_range from a NaN compared as a number; no_close says the day has none
    assert db.execute("SELECT key, rule, detail FROM data_issues ORDER BY 1, 2").fetchall() == [
        ("AAA|2026-10-01", "close_not_finite", "close NaN"), ("AAA|2026-10-01", "no_close", "close null, volume 10.0"),
        ("AAA|2026-10-02", "high_not_finite", "high inf"), ("AAA|2026-10-02", "low_not_finite", "low -inf")]
    again = load(tmp_path, zone)
    assert (again.unchanged, again.issues_new, again.flagged) == (3, 0, 2)
    write_prices(zone, "AAA", [price(1), price(2), price(3)], "2026-11-02T00:00:00+00:00")  # the source corrected it
    assert load(tmp_path, zone).flagged == 0 and issues(tmp_path) == set()


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
            load(tmp_path, zone, busy_timeout_s=0.05)
    finally:
        holder.execute("ROLLBACK")


def test_a_lock_released_within_the_busy_timeout_is_waited_for(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    write_prices(zone, "AAA", [price(1)])
    load(tmp_path, zone)
    write_prices(zone, "AAA", [price(1), price(2)])
    holder = sqlite3.connect(tmp_path / "nepse.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.3, holder.execute, ("ROLLBACK",))
    release.start()
    try:
        assert load(tmp_path, zone, busy_timeout_s=60).new == 1
    finally:
        release.join()
        holder.close()


def test_upsert_sql_is_parameterised_and_only_rewrites_changed_rows() -> None:
    sql = upsert_sql(PRICES)
    assert sql.count("?") == len(PRICES.columns)
    assert "ON CONFLICT (symbol, business_date) DO UPDATE" in sql
    assert "WHERE prices.close IS NOT excluded.close" in sql


def test_a_symbol_that_moves_to_a_new_security_id_supersedes_the_old_row(tmp_path: Path) -> None:
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
        "SELECT security_id, symbol, status, superseded_by FROM securities ORDER BY 1").fetchall()
    assert rows == [(1, "ABC", "A", 3), (2, "XYZ", "D", None), (3, "ABC", "A", None)]
    assert (counts.new, counts.updated) == (1, 1)


def _company_list(zone: RawZone, records: list[dict], fetched_at: str = FETCHED) -> None:
    from etl.datatypes.securities import SECURITIES

    zone.write(zone.securities_path, rows_to_table(SECURITIES.parse(records), SECURITIES, fetched_at), {})


def _securities(db: Path) -> list[tuple]:
    return sqlite3.connect(db).execute(
        "SELECT security_id, symbol, status, superseded_by FROM securities ORDER BY 1").fetchall()


def test_a_reused_symbol_keeps_every_security_id_and_the_later_tables_load(tmp_path: Path) -> None:
    """A delisted id whose symbol an active company now uses, and case-only twins, once crashed every load."""
    from etl.datatypes.securities import SECURITIES

    zone = RawZone(tmp_path)
    _company_list(zone, [{"id": 7, "symbol": "ABC", "status": "D"}, {"id": 40, "symbol": "ABC", "status": "A"},
                         {"id": 50, "symbol": "xyz", "status": "A"}, {"id": 51, "symbol": "XYZ", "status": "A"}])
    write_prices(zone, "ABC", [price(1)])
    loads = load_all(tmp_path / "nepse.db", zone, [SECURITIES, PRICES])
    assert _securities(tmp_path / "nepse.db") == [(7, "ABC", "D", None), (40, "ABC", "A", None),
                                                   (50, "XYZ", "A", 51), (51, "XYZ", "A", None)]
    assert loads["prices"].new == 1
    issues = sqlite3.connect(tmp_path / "nepse.db").execute(
        "SELECT data_type, key, rule, detail FROM data_issues").fetchall()
    assert issues == [("securities", "50", "symbol_claimed_twice",
                       "symbol XYZ is also claimed by active security id 51, the most recent listing, which is "
                       "the one fetched")]
    again = load_all(tmp_path / "nepse.db", zone, [SECURITIES])["securities"]
    assert (again.new, again.updated, again.unchanged, again.issues_new) == (0, 0, 4, 0)


def test_an_old_database_with_a_unique_symbol_is_migrated_in_place(tmp_path: Path) -> None:
    from etl.datatypes.securities import SECURITIES

    db = tmp_path / "nepse.db"
    old = sqlite3.connect(db)
    old.execute("PRAGMA application_id=1313165395")
    old.execute("CREATE TABLE securities (security_id INTEGER PRIMARY KEY, symbol TEXT, company_name TEXT, "
                "security_name TEXT, status TEXT, instrument_type TEXT, sector TEXT, email TEXT, website TEXT, "
                "regulatory_body TEXT, UNIQUE (symbol))")
    old.execute("INSERT INTO securities (security_id, symbol, company_name, status) VALUES (7, 'ABC', 'Old', 'A')")
    old.commit()
    old.close()
    zone = RawZone(tmp_path)
    _company_list(zone, [{"id": 7, "symbol": "ABC", "status": "D"}, {"id": 40, "symbol": "ABC", "status": "A"}])
    load_all(db, zone, [SECURITIES])
    assert _securities(db) == [(7, "ABC", "D", None), (40, "ABC", "A", None)]
    connection = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError):  # still one active holder per symbol
        connection.execute("UPDATE securities SET status = 'A' WHERE security_id = 7")
    assert connection.execute("SELECT company_name FROM securities WHERE security_id = 7").fetchone() == (None,)


def test_a_symbol_taken_over_by_an_id_missing_from_the_list_supersedes_the_old_holder(tmp_path: Path) -> None:
    from etl.datatypes.securities import SECURITIES

    zone = RawZone(tmp_path)
    _company_list(zone, [{"id": 1, "symbol": "ABC", "status": "A"}])
    load_all(tmp_path / "nepse.db", zone, [SECURITIES])
    _company_list(zone, [{"id": 3, "symbol": "ABC", "status": "A"}], "2026-11-02T00:00:00+00:00")
    load_all(tmp_path / "nepse.db", zone, [SECURITIES])
    assert _securities(tmp_path / "nepse.db") == [(1, "ABC", "A", 3), (3, "ABC", "A", None)]


def _profile_of(zone: RawZone, symbol: str, name: str) -> Path:
    profiles = REGISTRY["profiles"]
    rows = profiles.parse({"companyName": name, "companyEmail": "x@example.com"}, Company(1, symbol))
    return zone.write(zone.partition_path("profiles", symbol), rows_to_table(rows, profiles, FETCHED),
                      {"type": "profiles", "symbol": symbol})


def test_a_raw_file_that_does_not_belong_to_its_partition_is_quarantined_not_loaded(tmp_path: Path) -> None:
    """Another type's file, another symbol's file, a newer version's file: each moved aside with its reason."""
    profiles, reports = REGISTRY["profiles"], REGISTRY["reports"]
    zone = RawZone(tmp_path)
    _profile_of(zone, "ANBL", "Agricultural Development Bank")
    load_all(tmp_path / "nepse.db", zone, [profiles])
    anbl_reports = zone.write(zone.partition_path("reports", "ANBL"),
                              rows_to_table(reports.parse([], Company(2, "ANBL")), reports, FETCHED),
                              {"type": "reports", "symbol": "ANBL"})
    wrong_type = zone.partition_path("profiles", "JEFCL")
    wrong_type.parent.mkdir(parents=True)
    wrong_type.write_bytes(anbl_reports.read_bytes())
    wrong_symbol = zone.partition_path("profiles", "NABIL")
    wrong_symbol.parent.mkdir(parents=True)
    wrong_symbol.write_bytes(_profile_of(zone, "ANBL", "").read_bytes())  # ANBL's file, now with a blank name
    _profile_of(zone, "ANBL", "Agricultural Development Bank")
    newer = _profile_of(zone, "ZZZ", "From the future")
    table = pq.read_table(newer)
    meta = {**json.loads(table.schema.metadata[b"nepse_etl"]), "schema_version": SCHEMA_VERSION + 1}
    pq.write_table(table.replace_schema_metadata({b"nepse_etl": json.dumps(meta).encode()}), newer)
    counts = load_all(tmp_path / "nepse.db", zone, [profiles])["profiles"]
    reasons = {Path(path).parent.name: (Path(str(zone.quarantine_root / "profiles" / Path(path).parent.name
                                                  / "part.parquet.reason.txt")).read_text())
               for path in counts.bad_files}
    assert sorted(reasons) == ["symbol=JEFCL", "symbol=NABIL", "symbol=ZZZ"]
    assert "a reports file" in reasons["symbol=JEFCL"]
    assert "holds ANBL" in reasons["symbol=NABIL"]
    assert f"schema version {SCHEMA_VERSION + 1}" in reasons["symbol=ZZZ"]
    assert sqlite3.connect(tmp_path / "nepse.db").execute(
        "SELECT symbol, company_name FROM profiles").fetchall() == [("ANBL", "Agricultural Development Bank")]


def test_a_file_without_our_metadata_must_hold_its_partition_s_symbol(tmp_path: Path) -> None:
    zone = RawZone(tmp_path)
    path = zone.partition_path("prices", "JEFCL")
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"symbol": ["ANBL"], "business_date": ["2026-10-01"], "close": [1.0]}), path)
    counts = load(tmp_path, zone)
    assert counts.new == 0 and len(counts.bad_files) == 1
