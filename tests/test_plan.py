"""What the plan expects a unit to cost: the --dry-run estimate and each type's share of the budget."""

from __future__ import annotations

from datetime import date

from etl.datatypes import REGISTRY
from etl.datatypes.base import Company, FetchWindow
from etl.plan import WorkItem, expected_requests

NABIL = Company(131, "NABIL")


def _calls(since: date, until: date, type_name: str = "prices", page_size: int = 1) -> int:
    return expected_requests(WorkItem(NABIL, FetchWindow(since, until)), REGISTRY[type_name], page_size)


def test_a_year_of_daily_history_counts_nepses_trading_days_not_five_days_a_week() -> None:
    # 233: the median of NEPSE's trading days a year, measured (etl/plan.py); five days a week would be 261
    assert _calls(date(2025, 1, 1), date(2025, 12, 31)) == 233
    assert _calls(date(2016, 8, 1), date(2026, 7, 31), page_size=500) == 5  # ten years, 2,330 rows: 5 pages (was 6)
    assert _calls(date(2026, 1, 1), date(2026, 1, 1), page_size=500) == 1  # never less than one call


def test_a_type_that_is_not_daily_history_costs_its_calls_per_company() -> None:
    reports = REGISTRY["reports"]
    assert _calls(date(2016, 8, 1), date(2026, 7, 31), "reports") == reports.calls_per_company
