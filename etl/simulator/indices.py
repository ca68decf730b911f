"""NEPSE's indices: the served index list and each index's daily history.

The catalogue is the real one as public clients record it (ids, codes, names, sectors). Each
index is a seeded random walk on the same trading calendar as prices, anchored at the same
epoch, so the row of a day depends only on (seed, index, day): a later 'today' only appends.
"""

from __future__ import annotations

import datetime
import math
import random
from collections import deque
from dataclasses import dataclass

from etl.simulator.nepal_calendar import trading_days
from etl.simulator.prices import EPOCH

ALL_SECTORS = "ALL"
WEEKS_52 = datetime.timedelta(days=365)
MEAN_REVERSION = 0.01
MARKET_TURNOVER = 4.0e9  # rupees on a median day
TURNOVER_SIGMA = 0.45
AVERAGE_SHARE_PRICE = 520.0
SHARES_PER_TRADE = 310.0


@dataclass(frozen=True)
class IndexSpec:
    id: int
    code: str
    name: str
    sector: str
    level: float  # where the walk is anchored
    daily_volatility: float
    turnover_share: float  # of the market's turnover


CATALOGUE: tuple[IndexSpec, ...] = (
    IndexSpec(51, "BANKSUBIND", "Banking SubIndex", "Commercial Banks", 1420.0, 0.011, 0.14),
    IndexSpec(52, "HOTELIND", "Hotels And Tourism Index", "Hotels And Tourism", 6600.0, 0.016, 0.03),
    IndexSpec(53, "OTHERSIND", "Others Index", "Others", 1950.0, 0.014, 0.05),
    IndexSpec(54, "HYDPOWIND", "HydroPower Index", "Hydro Power", 3250.0, 0.017, 0.31),
    IndexSpec(55, "DEVBANKIND", "Development Bank Index", "Development Banks", 5100.0, 0.013, 0.06),
    IndexSpec(56, "MANPROCIND", "Manufacturing And Processing", "Manufacturing And Processing", 6900.0, 0.015, 0.05),
    IndexSpec(57, "SENSIND", "Sensitive Index", ALL_SECTORS, 470.0, 0.009, 1.0),
    IndexSpec(58, "NEPSE", "NEPSE Index", ALL_SECTORS, 2650.0, 0.009, 1.0),
    IndexSpec(59, "NONLIFIND", "Non Life Insurance", "Non Life Insurance", 11600.0, 0.015, 0.04),
    IndexSpec(60, "FININD", "Finance Index", "Finance", 2150.0, 0.014, 0.05),
    IndexSpec(61, "TRDIND", "Trading Index", "Tradings", 3300.0, 0.016, 0.01),
    IndexSpec(62, "FLOATIND", "Float Index", ALL_SECTORS, 182.0, 0.009, 1.0),
    IndexSpec(63, "SENSFLTIND", "Sensitive Float Index", ALL_SECTORS, 161.0, 0.009, 1.0),
    IndexSpec(64, "MICRFININD", "Microfinance Index", "Microfinance", 4850.0, 0.015, 0.09),
    IndexSpec(65, "LIFINSIND", "Life Insurance", "Life Insurance", 12100.0, 0.014, 0.06),
    IndexSpec(66, "MUTUALIND", "Mutual Fund", "Mutual Fund", 20.5, 0.004, 0.01),
    IndexSpec(67, "INVIDX", "Investment Index", "Investment", 96.0, 0.013, 0.04),
)
BY_ID = {spec.id: spec for spec in CATALOGUE}


def index_list_entry(spec: IndexSpec, regulators: dict[str, str]) -> dict:
    """An entry of the served `/api/nots/index` array."""
    return {
        "id": spec.id,
        "indexCode": spec.code,
        "indexName": spec.name,
        "description": "All Equity Index" if spec.code == "NEPSE" else spec.name,
        "sectorMaster": {
            "id": 37 + spec.id % 16,
            "sectorDescription": spec.sector,
            "activeStatus": "A",
            "regulatoryBody": regulators.get(spec.sector, "N/A"),
        },
        "activeStatus": "A",
        "keyIndexFlag": "Y" if spec.code == "NEPSE" else "N",
        "baseYearMarketCapitalization": round(spec.level * 97.3, 4),
    }


class _Extremes:
    """Highest high and lowest low of the last 52 weeks, with monotonic queues."""

    def __init__(self) -> None:
        self._highs: deque[tuple[datetime.date, float]] = deque()
        self._lows: deque[tuple[datetime.date, float]] = deque()

    def add(self, day: datetime.date, high: float, low: float) -> tuple[float, float]:
        while self._highs and self._highs[-1][1] <= high:
            self._highs.pop()
        while self._lows and self._lows[-1][1] >= low:
            self._lows.pop()
        self._highs.append((day, high))
        self._lows.append((day, low))
        for queue in (self._highs, self._lows):
            while queue[0][0] <= day - WEEKS_52:
                queue.popleft()
        return self._highs[0][1], self._lows[0][1]


def simulate_index(seed: int, index_id: int, start: datetime.date, end: datetime.date) -> list[dict]:
    """Rows of trading days in [start, end], oldest first; [] for an id not in the catalogue."""
    spec = BY_ID.get(index_id)
    if spec is None:
        return []
    rng = random.Random(f"{seed}:index:{index_id}")
    extremes = _Extremes()
    close = spec.level
    rows: list[dict] = []
    for row_id, day in enumerate(trading_days(EPOCH, end), start=1):
        shock, open_shock, high_shock, low_shock, turnover_shock = (rng.gauss(0, 1) for _ in range(5))
        previous = close
        pull = MEAN_REVERSION * math.log(previous / spec.level)
        close = previous * math.exp(spec.daily_volatility * shock - pull)
        opening = previous * (1 + spec.daily_volatility * 0.3 * open_shock)
        high = max(opening, close) * (1 + abs(high_shock) * spec.daily_volatility * 0.4)
        low = min(opening, close) * (1 - abs(low_shock) * spec.daily_volatility * 0.4)
        week_high, week_low = extremes.add(day, high, low)
        if day < start:
            continue
        turnover = MARKET_TURNOVER * spec.turnover_share * math.exp(TURNOVER_SIGMA * turnover_shock)
        volume = round(turnover / AVERAGE_SHARE_PRICE)
        rows.append({
            "id": index_id * 100_000 + row_id,
            "businessDate": day.isoformat(),
            "exchangeIndexId": index_id,
            "closingIndex": round(close, 2),
            "openIndex": round(opening, 2),
            "highIndex": round(high, 2),
            "lowIndex": round(low, 2),
            "fiftyTwoWeekHigh": round(week_high, 2),
            "fiftyTwoWeekLow": round(week_low, 2),
            "turnoverValue": round(turnover, 2),
            "turnoverVolume": volume,
            "totalTransaction": max(1, round(volume / SHARES_PER_TRADE)),
            "absChange": round(close - previous, 2),
            "percentageChange": round((close - previous) / previous * 100, 2),
        })
    return rows
