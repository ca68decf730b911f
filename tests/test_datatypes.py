"""Parsing NEPSE's records, mess included, into rows; and what each type declares."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from etl.datatypes import REGISTRY
from etl.datatypes.base import REJECT_REASON, Company, clean_text, fiscal_year, to_float
from etl.datatypes.securities import SECURITIES, active_companies
from tests.raw_prices import same_table

NABIL = Company(131, "NABIL")


def test_every_type_declares_a_key_within_its_schema_and_a_table() -> None:
    for data_type in [*REGISTRY.values(), SECURITIES]:
        assert set(data_type.natural_key) <= set(data_type.columns), data_type.name
        assert data_type.table and data_type.raw_schema.names[-2:] == ["fetched_at", "reject_reason"]


@pytest.mark.parametrize(("raw", "expected"), [
    (12, 12.0), ("12.5", 12.5), (" 1,234.5 ", 1234.5), ("10%", 10.0), ("", None), (None, None),
])
def test_numbers_arrive_in_many_forms(raw, expected) -> None:
    assert to_float(raw, "x") == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("2080/81", "2080/81"), ("2080/2081", "2080/81"), ("2079-2080", "2079/80"), (" 2081/82 ", "2081/82"),
])
def test_fiscal_years_take_the_reports_form(raw: str, expected: str) -> None:
    assert fiscal_year(raw) == expected


def test_text_is_trimmed_and_whitespace_folded() -> None:
    assert clean_text("  Standard Chartered Bank  Nepal\tLimited ") == "Standard Chartered Bank Nepal Limited"
    assert clean_text("   ") is None


def test_prices_map_the_documented_fields() -> None:
    record = {"businessDate": "2026-11-26", "totalTrades": 16, "totalTradedQuantity": 3778,
              "totalTradedValue": 1876977.47, "highPrice": 499.5, "lowPrice": 496.8, "closePrice": "499.2"}
    (row,) = REGISTRY["prices"].parse([record], NABIL)
    assert row == {"symbol": "NABIL", "business_date": "2026-11-26", "close": 499.2, "high": 499.5, "low": 496.8,
                   "volume": 3778.0, "turnover": 1876977.47, "trades": 16, "security_id": 131}


def test_a_record_that_cannot_be_read_is_kept_with_its_reason() -> None:
    rows = REGISTRY["prices"].parse([{"businessDate": "2026-11-26", "closePrice": "abc"}, "junk"], NABIL)
    assert rows[0][REJECT_REASON] == ("closePrice 'abc' is not a number in record "
                                      '{"businessDate": "2026-11-26", "closePrice": "abc"}')
    assert rows[1][REJECT_REASON] == 'record is a str, not an object: "junk"'


def _report(app_id: int, quarter: str | None, fy: str, eps) -> dict:
    return {"id": app_id, "modifiedDate": "2026-01-01T10:00:00", "fiscalReport": {
        "id": app_id + 1, "quarterMaster": {"id": 1, "quarterName": quarter} if quarter else None,
        "reportTypeMaster": {"id": 1, "reportName": "Quarterly Report" if quarter else "Annual Report"},
        "financialYear": {"id": 80, "fyName": "2080/2081", "fyNameNepali": fy}, "peValue": "8.1",
        "epsValue": eps, "paidUpCapital": 100.0, "profitAmount": None, "netWorthPerShare": 150},
        "applicationDocumentDetailsList": [{"id": 9, "submittedDate": "2026-01-01"}]}


def test_reports_periods_years_and_a_null_report() -> None:
    records = [_report(10, "First Quarter", "2080/81", 5.5), _report(20, None, "2080/81", "22.1"),
               _report(30, "4th Quarter", "2080/81", None), {"id": 40, "fiscalReport": None}]
    rows = REGISTRY["reports"].parse(records, NABIL)
    assert [(r["period"], r["fiscal_year"], r["eps"]) for r in rows] == [
        ("Q1", "2080/81", 5.5), ("annual", "2080/81", 22.1), ("Q4", "2080/81", None)]
    assert rows[0]["pe"] == 8.1 and rows[0]["submitted_date"] == "2026-01-01"


def test_a_report_without_modified_date_is_stored_unflagged(tmp_path) -> None:
    """Real report records carry no modifiedDate: the column stays null and nothing complains."""
    from etl.datatypes.base import rows_to_table
    from etl.load import load_all
    from etl.rawzone import RawZone

    record = _report(10, "First Quarter", "2080/81", 5.5)
    del record["modifiedDate"]
    reports = REGISTRY["reports"]
    zone = RawZone(tmp_path)
    table = rows_to_table(reports.parse([record], NABIL), reports, "2026-11-01T00:00:00+00:00")
    zone.write(zone.partition_path("reports", "NABIL"), table, {})
    counts = load_all(tmp_path / "nepse.db", zone, [reports])["reports"]
    assert (counts.new, counts.flagged, counts.quarantined) == (1, 0, 0)


def test_every_rule_has_a_unique_name_and_says_why() -> None:
    from etl.issues import DUPLICATE_DIFFERS

    for data_type in [*REGISTRY.values(), SECURITIES]:
        names = [rule.name for rule in data_type.rules]
        assert len(set(names)) == len(names) and DUPLICATE_DIFFERS not in names and "key" not in names
        assert all(rule.why for rule in data_type.rules)
    assert {rule.name for rule in REGISTRY["prices"].rules} >= {"high_below_low", "close_outside_range"}
    usage = (Path(__file__).resolve().parent.parent / "docs" / "usage.md").read_text()
    for name in [rule.name for data_type in REGISTRY.values() for rule in data_type.rules] + [DUPLICATE_DIFFERS]:
        assert f"`{name}`" in usage, f"docs/usage.md does not list the rule {name}"


def test_dividends_keep_two_declarations_in_one_year() -> None:
    def declaration(record_id: int, cash) -> dict:
        return {"id": record_id, "modifiedDate": "2025-12-07T09:20:48.573", "companyNews": {
            "id": record_id + 1, "newsHeadline": " Dividend  declared ", "dividendsNotice": {
                "id": record_id + 2, "financialYear": {"fyNameNepali": "2081/82"}, "cashDividend": cash,
                "bonusShare": "", "rightShare": None}}}

    rows = REGISTRY["dividends"].parse([declaration(1, "10"), declaration(5, 2.5)], NABIL)
    assert [(r["dividend_id"], r["cash_pct"], r["bonus_pct"], r["fiscal_year"]) for r in rows] == [
        (1, 10.0, None, "2081/82"), (5, 2.5, None, "2081/82")]
    assert rows[0]["headline"] == "Dividend declared"
    assert rows[0]["published_at"] == "2025-12-07T09:20:48.573"


def test_profile_fields() -> None:
    (row,) = REGISTRY["profiles"].parse({"companyName": "Nabil Bank Limited ", "companyEmail": "a@b.np",
                                         "companyProfile": None, "companyContactPerson": "X", "town": "Kathmandu",
                                         "addressField": "Beena Marg", "phoneNumber": "01-4226606"}, NABIL)
    assert (row["company_name"], row["town"], row["profile"], row["phone"]) == (
        "Nabil Bank Limited", "Kathmandu", None, "01-4226606")


def test_universe_is_active_companies_with_trimmed_symbols() -> None:
    records = [{"id": 1, "symbol": " NABIL ", "status": "A"}, {"id": 2, "symbol": "OLD", "status": "D"},
               {"id": 3, "symbol": "NICAD85/86", "status": "A"}, {"id": "4", "symbol": "SUS", "status": "S"}]
    rows = SECURITIES.parse(records)
    assert [c.symbol for c in active_companies(rows)] == ["NABIL", "NICAD85/86"]
    assert rows[3]["security_id"] == 4


def _price(day: str, **overrides: object) -> dict:
    record = {"businessDate": day, "totalTrades": 16, "totalTradedQuantity": 3778, "totalTradedValue": 964523.1,
              "highPrice": 257.0, "lowPrice": 252.2, "closePrice": 255.3}
    return {**record, **overrides}


@pytest.mark.parametrize("odd", [
    {"closePrice": "1,234.5"}, {"closePrice": "abc"}, {"highPrice": True}, {"totalTrades": 2.5},
    {"totalTrades": 3.0}, {"lowPrice": None}, {"businessDate": "2026-02-30"}, {"businessDate": " 2026-01-05 "},
    {"businessDate": "2026-01-05T00:00:00"}, {"volume_unknown_key": 1}, {"closePrice": float("nan")},
    {"totalTrades": 10**20}, {"businessDate": "2026-01-0\ud800"}, {"highPrice": float("inf")},
    {"lowPrice": 252}, {"totalTradedQuantity": None, "totalTrades": None},
])
def test_price_pages_in_columns_match_the_row_parser_whatever_a_page_holds(odd: dict) -> None:
    from etl.datatypes.base import Pages, rows_to_table
    from etl.datatypes.prices import PRICES, parse_columns

    clean = [_price(f"2026-01-{day:02d}") for day in range(1, 11)]
    odd_page = [*clean[:3], _price("2026-01-20", **odd), *clean[3:5]]
    row_by_row = rows_to_table(PRICES.parse(clean + odd_page, NABIL), PRICES, "t")
    pages = Pages(PRICES.page_converter(NABIL)(page) for page in (clean, odd_page))
    assert parse_columns(clean, NABIL) is not None  # the clean page took the columnar path
    assert same_table(PRICES.to_table(pages, NABIL, "t"), row_by_row)
    assert same_table(PRICES.to_table(clean + odd_page, NABIL, "t"), row_by_row)


def test_a_price_record_without_a_key_is_a_null_in_columns_as_in_the_row_parser() -> None:
    from etl.datatypes.base import rows_to_table
    from etl.datatypes.prices import PRICES, parse_columns

    page = [_price("2026-01-01"), {k: v for k, v in _price("2026-01-02").items() if k != "closePrice"}]
    columns = parse_columns(page, NABIL)
    assert columns is not None and columns.column("close").to_pylist() == [255.3, None]
    assert PRICES.to_table(page, NABIL, "t").equals(rows_to_table(PRICES.parse(page, NABIL), PRICES, "t"))


def test_a_price_page_that_is_not_a_list_of_objects_goes_to_the_row_parser() -> None:
    from etl.datatypes.prices import PRICES, parse_columns

    assert parse_columns([_price("2026-01-01"), "junk"], NABIL) is None
    table = PRICES.to_table([_price("2026-01-01"), "junk"], NABIL, "t")
    assert table.column(REJECT_REASON).to_pylist() == [None, 'record is a str, not an object: "junk"']


# JSON's NaN and Infinity literals, which Python's json reads (orjson refuses them and the client falls back)
NOT_FINITE = json.loads('{"nan": NaN, "inf": Infinity, "minus_inf": -Infinity}')


@pytest.mark.parametrize("as_columns", [True, False], ids=["columns", "row-parser"])
def test_a_price_that_is_not_finite_is_kept_for_the_load_to_store_as_null_and_flag(as_columns: bool) -> None:
    """The row has a key and its other fields are good: it is not a parse problem (not quarantined)."""
    from etl.datatypes.base import rows_to_table

    prices = REGISTRY["prices"]
    records = [{**_price("2026-01-05"), "closePrice": NOT_FINITE["nan"], "highPrice": NOT_FINITE["inf"],
                "lowPrice": NOT_FINITE["minus_inf"]}, {**_price("2026-01-04"), "closePrice": "NaN"}]
    table = (prices.to_table(records, NABIL, "t") if as_columns
             else rows_to_table(prices.parse(records, NABIL), prices, "t"))
    assert table.column(REJECT_REASON).to_pylist() == [None, None]
    close, high, low = (table.column(name).to_pylist() for name in ("close", "high", "low"))
    assert math.isnan(close[0]) and high[0] == math.inf and low[0] == -math.inf
    assert math.isnan(close[1]) and (high[1], low[1]) == (257.0, 252.2)


def test_a_price_given_as_a_numeric_string_is_read() -> None:
    record = {**_price("2026-01-05"), "closePrice": "1,234.5", "highPrice": " 1,240 ", "lowPrice": " 12 "}
    [row] = REGISTRY["prices"].parse([record], NABIL)
    assert (row["close"], row["high"], row["low"], row.get(REJECT_REASON)) == (1234.5, 1240.0, 12.0, None)


def test_a_trade_count_that_is_not_finite_cannot_be_stored_and_says_so() -> None:
    """trades is an integer column: NaN has no place in it, so that row alone is quarantined with its reason."""
    [row] = REGISTRY["prices"].parse([{**_price("2026-01-05"), "totalTrades": NOT_FINITE["nan"]}], NABIL)
    assert row[REJECT_REASON].startswith("totalTrades nan is not a finite number in record")


def test_two_active_ids_for_one_symbol_fetch_only_the_most_recent_listing() -> None:
    from etl.datatypes.securities import symbol_conflicts

    records = [{"id": 9, "symbol": "ABC", "status": "A"}, {"id": 30, "symbol": "abc ", "status": "A"},
               {"id": 12, "symbol": "ABC", "status": "D"}, {"id": 5, "symbol": "NABIL", "status": "A"}]
    rows = SECURITIES.parse(records)
    assert [(c.security_id, c.symbol) for c in active_companies(rows)] == [(30, "ABC"), (5, "NABIL")]
    [conflict] = symbol_conflicts(rows)
    assert (conflict.symbol, conflict.chosen, conflict.others) == ("ABC", 30, (9,))
    assert conflict.describe() == ("symbol ABC is claimed by active security ids 9 and 30: fetching id 30, "
                                   "the most recent listing")


@pytest.mark.parametrize(("type_name", "shown"), [("prices", "volume"), ("indices", "turnover")])
def test_a_day_without_a_close_is_flagged_with_the_values_it_has(type_name: str, shown: str) -> None:
    import polars as pl

    rule = next(rule for rule in REGISTRY[type_name].rules if rule.name == "no_close")
    days = pl.DataFrame({"close": [None, 101.5], shown: [10.0, None]})
    flagged = days.select(rule.breaks().alias("breaks"), rule.detail().alias("detail"))
    assert flagged["breaks"].to_list() == [True, False]
    assert flagged["detail"][0] == f"close null, {shown} 10.0"
