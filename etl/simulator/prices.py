"""Daily price rows: a seeded random walk per security, anchored at a fixed epoch.

The walk always starts at EPOCH and draws the same fixed set of random numbers for every trading
day, so the row of a given day depends only on (seed, security, day): moving the simulated 'today'
only appends rows, and rows before the served window are skipped without being built.
"""

from __future__ import annotations

import datetime
import math
import random
from typing import NamedTuple

from etl.simulator.companies import Security, TradingTraits
from etl.simulator.nepal_calendar import trading_days

EPOCH = datetime.date(2020, 1, 1)
CIRCUIT_LIMIT = 0.095  # NEPSE halts a stock that moves 10% in a day
MEAN_REVERSION = 0.01
MIN_PRICE = 0.1
INTRADAY_RANGE_SCALE = 0.6
VOLUME_SIGMA = 0.7


class DayDraws(NamedTuple):
    """Standard normal shocks and uniforms for one trading day."""

    price_shock: float
    high_shock: float
    low_shock: float
    volume_shock: float
    trades: float
    idle: float
    trade_size: float
    fill: float


def draw_day(rng: random.Random) -> DayDraws:
    gauss, uniform = rng.gauss, rng.random
    return DayDraws(gauss(0, 1), gauss(0, 1), gauss(0, 1), gauss(0, 1), uniform(), uniform(), uniform(), uniform())


def next_price(price: float, traits: TradingTraits, draws: DayDraws) -> float:
    pull_to_anchor = MEAN_REVERSION * math.log(price / traits.anchor_price)
    change = traits.daily_volatility * draws.price_shock - pull_to_anchor
    return price * math.exp(max(-CIRCUIT_LIMIT, min(CIRCUIT_LIMIT, change)))


def price_row(
    day: datetime.date, trades: int, quantity: int, value: float, high: float, low: float, close: float
) -> dict:
    return {
        "businessDate": day.isoformat(),
        "totalTrades": trades,
        "totalTradedQuantity": quantity,
        "totalTradedValue": value,
        "highPrice": high,
        "lowPrice": low,
        "closePrice": close,
    }


def day_row(day: datetime.date, price: float, traits: TradingTraits, draws: DayDraws) -> dict | None:
    """The row of a day: None if the security did not trade, a zero-volume row, or a traded row."""
    if draws.trades >= traits.trade_probability:
        return None
    close = max(round(price, 1), MIN_PRICE)
    if draws.idle < traits.zero_volume_probability:
        return price_row(day, 0, 0, 0.0, close, close, close)
    spread = traits.daily_volatility * INTRADAY_RANGE_SCALE
    high = max(round(close * (1 + abs(draws.high_shock) * spread), 1), close)
    low = max(min(round(close * (1 - abs(draws.low_shock) * spread), 1), close), MIN_PRICE)
    quantity = max(1, round(traits.median_volume * math.exp(VOLUME_SIGMA * draws.volume_shock)))
    shares_per_trade = traits.shares_per_trade * (0.5 + draws.trade_size)
    trades = max(1, min(quantity, round(quantity / shares_per_trade)))
    value = round(quantity * (low + (high - low) * draws.fill), 2)
    return price_row(day, trades, quantity, value, high, low, close)


def simulate_prices(seed: int, security: Security, start: datetime.date, end: datetime.date) -> list[dict]:
    """Rows for trading days in [start, end], oldest first."""
    traits = security.traits
    rng = random.Random(f"{seed}:prices:{security.id}")
    last_day = min(end, traits.last_trading_day or end)
    price = traits.anchor_price
    rows = []
    for day in trading_days(max(EPOCH, traits.first_trading_day), last_day):
        draws = draw_day(rng)
        price = next_price(price, traits, draws)
        if day >= start:
            row = day_row(day, price, traits, draws)
            if row is not None:
                rows.append(row)
    return rows
