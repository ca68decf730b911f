"""Nepal time, NEPSE trading days and Bikram Sambat fiscal years, as far as the simulator needs them."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

NEPAL_TZ = datetime.timezone(datetime.timedelta(hours=5, minutes=45), name="NPT")

# Python weekday numbers: Sunday=6, Monday=0 ... Thursday=3.
TRADING_WEEKDAYS = frozenset({6, 0, 1, 2, 3})

# A small fixed set of (month, day) market holidays, the same every year. The real ones follow the
# lunar calendar; fixed dates are enough to exercise "a weekday without a row".
HOLIDAYS_MONTH_DAY = frozenset(
    {
        (1, 11),  # Prithvi Jayanti
        (2, 19),  # Democracy Day
        (3, 14),  # Holi
        (4, 14),  # Nepali New Year
        (5, 1),  # Labour Day
        (5, 12),  # Buddha Jayanti
        (5, 29),  # Republic Day
        (8, 19),  # Janai Purnima
        (9, 19),  # Constitution Day
        (10, 1),  # Dashain
        (10, 2),
        (10, 3),
        (10, 21),  # Tihar
        (10, 22),
        (11, 6),  # Chhath
        (12, 25),  # Christmas
    }
)

# Approximate AD dates on which the Nepali fiscal year (Shrawan 1) starts and its quarters end.
FISCAL_YEAR_START_MONTH_DAY = (7, 16)
BS_MINUS_AD_AT_FY_START = 57


def nepal_today() -> datetime.date:
    return datetime.datetime.now(NEPAL_TZ).date()


def is_trading_day(day: datetime.date) -> bool:
    return day.weekday() in TRADING_WEEKDAYS and (day.month, day.day) not in HOLIDAYS_MONTH_DAY


def trading_days(start: datetime.date, end: datetime.date) -> Iterator[datetime.date]:
    """Trading days in [start, end], oldest first."""
    day = start
    one_day = datetime.timedelta(days=1)
    while day <= end:
        if is_trading_day(day):
            yield day
        day += one_day


@dataclass(frozen=True)
class FiscalYear:
    """A Nepali fiscal year, named by the Bikram Sambat year it starts in (2081 -> "2081/82")."""

    bs_start_year: int

    @property
    def ad_start_year(self) -> int:
        return self.bs_start_year - BS_MINUS_AD_AT_FY_START

    @property
    def short_name(self) -> str:
        return f"{self.bs_start_year}/{(self.bs_start_year + 1) % 100:02d}"

    @property
    def long_name(self) -> str:
        return f"{self.bs_start_year}/{self.bs_start_year + 1}"

    @property
    def start(self) -> datetime.date:
        return datetime.date(self.ad_start_year, *FISCAL_YEAR_START_MONTH_DAY)

    def quarter_end(self, quarter: int) -> datetime.date:
        """Last day of quarter 1..4 (Ashwin, Poush, Chaitra, Ashadh end, approximately)."""
        year = self.ad_start_year
        ends = {
            1: datetime.date(year, 10, 16),
            2: datetime.date(year + 1, 1, 14),
            3: datetime.date(year + 1, 4, 13),
            4: datetime.date(year + 1, 7, 15),
        }
        return ends[quarter]

    @property
    def end(self) -> datetime.date:
        return self.quarter_end(4)

    def shifted(self, years: int) -> FiscalYear:
        return FiscalYear(self.bs_start_year + years)


def fiscal_year_of(day: datetime.date) -> FiscalYear:
    started_this_ad_year = (day.month, day.day) >= FISCAL_YEAR_START_MONTH_DAY
    ad_start_year = day.year if started_this_ad_year else day.year - 1
    return FiscalYear(ad_start_year + BS_MINUS_AD_AT_FY_START)
