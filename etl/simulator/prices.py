"""Daily price rows: a seeded random walk per security, anchored at a fixed epoch.

The walk always starts at EPOCH and draws the same fixed set of random numbers for every trading
day, so the row of a given day depends only on (seed, security, day): moving the simulated 'today'
only appends rows, and rows before the served window are skipped without being built. Days before
EPOCH (a long --history-days) come from a second walk going backwards from it, built only when asked.

The published rows carry the real files' quirks at their measured rates (ten years of real NEPSE
prices, 2016-08..2026-08, 439,478 rows): a high below the low, a close outside the day's range,
some days published twice, and no turnover at all before NEPSE began publishing it in March 2011.
"""

from __future__ import annotations

import datetime
import functools
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

HIGH_BELOW_LOW_RATE = 1 / 3_900  # 112 real rows
CLOSE_OUTSIDE_RANGE_RATE = 1 / 1_060  # 414 real rows
DUPLICATE_DAY_RATE = 1 / 300  # 11 of 3,355 real trading days since 2012 were published twice...
DUPLICATED_SHARE = 0.35  # ...for about a third of that day's rows, identical copies
TURNOVER_PUBLISHED_FROM = datetime.date(2011, 3, 20)  # every real row before it has a turnover of 0


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
    quirk: float
    copy: float


def draw_day(rng: random.Random) -> DayDraws:
    gauss, uniform = rng.gauss, rng.random
    return DayDraws(gauss(0, 1), gauss(0, 1), gauss(0, 1), gauss(0, 1), uniform(), uniform(), uniform(), uniform(),
                    uniform(), uniform())


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
    value = round(quantity * (low + (high - low) * draws.fill), 2) if day >= TURNOVER_PUBLISHED_FROM else 0.0
    if draws.quirk < HIGH_BELOW_LOW_RATE:
        high, low = low, high
    elif draws.quirk < HIGH_BELOW_LOW_RATE + CLOSE_OUTSIDE_RANGE_RATE:
        close = round(high * 1.01, 1) if draws.fill < 0.5 else max(round(low * 0.99, 1), MIN_PRICE)
    return price_row(day, trades, quantity, value, high, low, close)


@functools.lru_cache(maxsize=8192)
def published_twice(seed: int, day: datetime.date) -> bool:
    """Whether NEPSE published this day's rows twice (a whole day at a time, as in the real files)."""
    return random.Random(f"{seed}:duplicate-day:{day.isoformat()}").random() < DUPLICATE_DAY_RATE


def published_rows(seed: int, day: datetime.date, price: float, traits: TradingTraits, draws: DayDraws) -> list[dict]:
    row = day_row(day, price, traits, draws)
    if row is None:
        return []
    return [row, row] if draws.copy < DUPLICATED_SHARE and published_twice(seed, day) else [row]


def simulate_prices(seed: int, security: Security, start: datetime.date, end: datetime.date) -> list[dict]:
    """Rows for trading days in [start, end], oldest first."""
    traits = security.traits
    last_day = min(end, traits.last_trading_day or end)
    rows = rows_before_epoch(seed, security, start, last_day) if start < EPOCH else []
    rng = random.Random(f"{seed}:prices:{security.id}")
    price = traits.anchor_price
    for day in trading_days(max(EPOCH, traits.first_trading_day), last_day):
        draws = draw_day(rng)
        price = next_price(price, traits, draws)
        if day >= start:
            rows += published_rows(seed, day, price, traits, draws)
    return rows


def rows_before_epoch(seed: int, security: Security, start: datetime.date, last_day: datetime.date) -> list[dict]:
    """Rows of [start, last_day] before EPOCH, from a walk going backwards from EPOCH (oldest first)."""
    traits = security.traits
    rng = random.Random(f"{seed}:prices-before:{security.id}")
    price = traits.anchor_price
    newest_first: list[list[dict]] = []
    before_epoch = EPOCH - datetime.timedelta(days=1)
    for day in reversed(list(trading_days(max(start, traits.first_trading_day), before_epoch))):
        draws = draw_day(rng)
        price = next_price(price, traits, draws)
        if day <= last_day:
            newest_first.append(published_rows(seed, day, price, traits, draws))
    return [row for rows in reversed(newest_first) for row in rows]
