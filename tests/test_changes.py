"""Daily runs: what changed since the last run, unit by unit, and a summary that stays short."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

from etl.changes import MAX_CHANGE_LINES, compare, summary_lines
from etl.datatypes.base import Company
from etl.datatypes.dividends import DIVIDENDS
from etl.datatypes.prices import PRICES
from etl.datatypes.reports import REPORTS
from etl.extract import rows_to_table
from etl.simulator import SimData, SimulatorProcess

ADBL = Company(397, "ADBL")


def _table(data_type, rows):
    return rows_to_table([{"symbol": "ADBL", "security_id": 397, **row} for row in rows], data_type, "2026-11-28")


def test_new_and_revised_rows_are_told_apart_from_unchanged_ones() -> None:
    old = _table(PRICES, [{"business_date": "2026-11-25", "close": 500.0}, {"business_date": "2026-11-24",
                                                                            "close": 490.0}])
    fresh = _table(PRICES, [{"business_date": "2026-11-26", "close": 505.0}, {"business_date": "2026-11-25",
                                                                              "close": 501.0}])
    change = compare(old, fresh, PRICES, "ADBL")
    assert change is not None and (change.new, change.revised) == (1, 1)
    assert change.description == "1 new price day, 1 revised price day"
    assert compare(old, old, PRICES, "ADBL") is None
    assert compare(None, fresh, PRICES, "ADBL") is None  # a first fetch has nothing to compare with


def test_a_day_fetched_again_with_the_same_nan_is_not_revised() -> None:
    day = {"business_date": "2026-11-25", "close": float("nan"), "high": float("inf")}
    assert compare(_table(PRICES, [day]), _table(PRICES, [dict(day)]), PRICES, "ADBL") is None
    change = compare(_table(PRICES, [day]), _table(PRICES, [{**day, "close": 500.0}]), PRICES, "ADBL")
    assert change is not None and change.revised == 1


def test_a_new_dividend_is_named_by_its_fiscal_year() -> None:
    old = _table(DIVIDENDS, [{"dividend_id": 1, "fiscal_year": "2081/82", "cash_pct": 10.0}])
    fresh = _table(DIVIDENDS, [{"dividend_id": 1, "fiscal_year": "2081/82", "cash_pct": 10.0},
                               {"dividend_id": 2, "fiscal_year": "2082/83", "cash_pct": 12.0}])
    assert compare(old, fresh, DIVIDENDS, "ADBL").description == "new dividend 2082/83"
    reports = _table(REPORTS, [{"fiscal_year": "2082/83", "period": "Q1"}, {"fiscal_year": "2081/82", "period": "Q4"}])
    assert (compare(_table(REPORTS, []), reports, REPORTS, "ADBL").description
            == "2 new reports (2081/82 Q4, 2082/83 Q1)")


def test_the_summary_puts_news_first_and_caps_a_large_market() -> None:
    prices = [{"symbol": f"S{number:03d}", "description": "1 new price day"} for number in range(300)]
    types = {
        "prices": {"companies_ok": 300, "changes": prices},
        "dividends": {"companies_ok": 300, "changes": [{"symbol": "S150", "description": "new dividend 2082/83"}]},
        "indices": {"companies_ok": 17, "first_fetched": 17, "changes": []},
    }
    lines = summary_lines(types)
    assert lines[0] == "What changed since the last run (300 companies or indices):"
    assert lines[1] == "  S150: 1 new price day; new dividend 2082/83"
    assert lines[2] == "  S000: 1 new price day"
    assert len([line for line in lines if line.startswith("  S")]) == MAX_CHANGE_LINES
    assert f"  ... and {300 - MAX_CHANGE_LINES} more (every change is in the run report)" in lines
    assert lines[-1] == "Fetched for the first time (nothing to compare with): indices 17."
    assert summary_lines({"prices": {"companies_ok": 5, "changes": []}}) == ["Nothing changed since the last run."]
    assert summary_lines({"prices": {"companies_ok": 0}}) == []  # --load-only fetched nothing


def test_a_daily_run_fetches_new_days_rechecks_filings_with_one_call_each_and_says_what_changed(
        tmp_path: Path, simulator: SimulatorProcess, sim_data: SimData, run_cli, fast) -> None:
    symbols = [c["symbol"].strip() for c in sim_data.companies() if c["status"] == "A"][30:33]
    since = (sim_data.today - datetime.timedelta(days=120)).isoformat()
    first_until = (sim_data.today - datetime.timedelta(days=30)).isoformat()
    later_until = (sim_data.today - datetime.timedelta(days=20)).isoformat()
    args = ["--base-url", simulator.base_url, "--symbols", ",".join(symbols), "--since", since,
            "--types", "prices,reports,dividends,profiles", "--output", str(tmp_path / "out"), *fast]
    first = run_cli(*args, "--until", first_until, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Fetched for the first time (nothing to compare with): prices 3, reports 3" in first.stdout
    simulator.reset_stats()
    later = run_cli(*args, "--until", later_until, cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    stats = simulator.stats()
    # Reports and dividends are re-checked with one unpaged call a company; prices fetch only the days
    # after the first run (tests/test_indices.py shows the same of indices).
    assert stats["per_path_kind"]["reports"] == stats["per_path_kind"]["dividends"] == len(symbols)
    assert stats["per_path_kind"]["prices"] == len(symbols)
    new_price_days = sum(1 for symbol_id in _ids(sim_data, symbols) for row in sim_data.served_prices(symbol_id)
                         if first_until < row["businessDate"] <= later_until)
    assert stats["rows_served"]["prices"] == new_price_days > 0
    runs = (tmp_path / "out" / "runs").glob("*.json")
    report = json.loads(max(runs, key=lambda path: path.stat().st_mtime_ns).read_text())
    assert report["types"]["reports"]["new"] == 0 and report["types"]["reports"]["unchanged"] > 0
    assert "What changed since the last run (" in later.stdout
    told = {change["symbol"]: change["new"] for change in report["types"]["prices"]["changes"]}
    assert sum(told.values()) == new_price_days
    for symbol, count in told.items():
        assert re.search(rf"^  {re.escape(symbol)}: {count} new price days?$", later.stdout, re.MULTILINE)


def _ids(sim_data: SimData, symbols: list[str]) -> list[int]:
    return [c["id"] for c in sim_data.companies() if c["symbol"].strip() in symbols]
