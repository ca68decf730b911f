"""Price records as the API serves them, and a way to put them in a raw zone: input for the loader's tests."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from etl.datatypes import REGISTRY
from etl.datatypes.base import Company, rows_to_table
from etl.rawzone import RawZone

PRICES = REGISTRY["prices"]
FETCHED = "2026-11-01T00:00:00+00:00"


def price(day: int, close: float = 100.0, high: float = 101.0, low: float = 99.0) -> dict:
    """One October 2026 day of prices, as the API's price history serves it."""
    return {"businessDate": f"2026-10-{day:02d}", "closePrice": close, "highPrice": high, "lowPrice": low,
            "totalTradedQuantity": 10, "totalTradedValue": 1000.0, "totalTrades": 2}


def write_prices(zone: RawZone, symbol: str, records: list[dict], fetched_at: str = FETCHED) -> Path:
    rows = PRICES.parse(records, Company(1, symbol))
    return zone.write(zone.partition_path("prices", symbol), rows_to_table(rows, PRICES, fetched_at), {})


def same_table(left: pa.Table, right: pa.Table) -> bool:
    """`Table.equals`, except that a NaN equals a NaN (the raw zone keeps NaN as the source sent it)."""
    return left.schema.equals(right.schema) and pl.from_arrow(left).equals(pl.from_arrow(right))
