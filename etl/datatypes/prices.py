"""Daily prices: one Spring-paged call per company and window, newest first, no open price."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from etl import api
from etl.datatypes.base import (
    REJECT_REASON,
    Api,
    Company,
    DataType,
    FetchWindow,
    Row,
    Rule,
    any_of,
    below,
    daily_history_table,
    fetch_daily_history,
    first_reason,
    missing,
    negative,
    outside,
    parse_each,
    required,
    to_float,
    to_int,
    to_iso_date,
    values_text,
)
from etl.datatypes.securities import COMPANIES

if TYPE_CHECKING:
    import polars as pl

SCHEMA = pa.schema([
    ("symbol", pa.string()),
    ("business_date", pa.string()),
    ("close", pa.float64()),
    ("high", pa.float64()),
    ("low", pa.float64()),
    ("volume", pa.float64()),  # totalTradedQuantity
    ("turnover", pa.float64()),  # totalTradedValue
    ("trades", pa.int64()),  # totalTrades
    ("security_id", pa.int64()),
])


async def fetch(client: Api, company: Company, window: FetchWindow) -> list[Any]:
    return await fetch_daily_history(client, api.PRICE_HISTORY_PATH.format(id=company.security_id), window,
                                     convert=PRICES.page_converter(company))


def parse(records: Any, company: Company) -> list[Row]:
    def parse_one(record: dict) -> Row:
        return {
            "symbol": company.symbol,
            "business_date": to_iso_date(record.get("businessDate"), "businessDate"),
            "close": to_float(record.get("closePrice"), "closePrice"),
            "high": to_float(record.get("highPrice"), "highPrice"),
            "low": to_float(record.get("lowPrice"), "lowPrice"),
            "volume": to_float(record.get("totalTradedQuantity"), "totalTradedQuantity"),
            "turnover": to_float(record.get("totalTradedValue"), "totalTradedValue"),
            "trades": to_int(record.get("totalTrades"), "totalTrades"),
            "security_id": company.security_id,
        }

    blank = {"symbol": company.symbol, "security_id": company.security_id}
    return parse_each(records, parse_one, blank)


_FLOATS = {"close": "closePrice", "high": "highPrice", "low": "lowPrice", "volume": "totalTradedQuantity",
           "turnover": "totalTradedValue"}


def parse_columns(records: Any, company: Company) -> pa.Table | None:
    """`parse` for a clean page, a column at a time (None: some value needs `parse`'s row-by-row checks)."""
    constants = {"symbol": pa.scalar(company.symbol), "security_id": pa.scalar(company.security_id, pa.int64())}
    return daily_history_table(records, "totalTrades", _FLOATS, constants, SCHEMA)


def contract() -> pl.Expr:
    return first_reason(required("symbol", "business_date"))


def _price_not_positive() -> pl.Expr:
    import polars as pl

    prices = ("close", "high", "low")
    traded = pl.col("volume") > 0
    return any_of([pl.col(column) < 0 for column in prices] + [(pl.col(column) == 0) & traded for column in prices])


# Measured on ten years of real NEPSE prices (docs/usage.md has the counts): each catches days that
# are inconsistent in themselves, and none fires on flat days, zero-volume days or early years'
# zero turnover, which are normal.
RULES = (
    below("high_below_low", "low", "high", why="the day's high is below its low"),
    outside("close_outside_range", "close", "low", "high", why="the close lies outside the day's [low, high]"),
    Rule("price_not_positive", "a price below zero, or zero on a day shares traded", _price_not_positive,
         lambda: values_text("close", "high", "low", "volume")),
    negative("negative_amount", "volume", "turnover", "trades", why="volume, turnover or trades below zero"),
    missing("no_close", "close", "volume", why="the day has no close price"),
)


PRICES = DataType(
    name="prices",
    table="prices",
    schema=SCHEMA,
    natural_key=("symbol", "business_date"),
    scope=COMPANIES,
    fetch=fetch,
    parse=parse,
    parse_columns=parse_columns,
    contract=contract,
    rules=RULES,
    date_column="business_date",
    every_security=True,  # promoter shares trade under their own security ids
    noun="price day",
)

__all__ = ["PRICES", "REJECT_REASON"]
