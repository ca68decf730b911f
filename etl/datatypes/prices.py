"""Daily prices: one Spring-paged call per company and window, newest first, no open price."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from etl import api
from etl.client import NepseClient
from etl.datatypes.base import (
    REJECT_REASON,
    Company,
    DataType,
    FetchWindow,
    Row,
    below,
    first_reason,
    non_negative,
    parse_each,
    required,
    to_float,
    to_int,
    to_iso_date,
)

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


async def fetch(client: NepseClient, company: Company, window: FetchWindow) -> list[Any]:
    params = {"startDate": window.since.isoformat(), "endDate": window.until.isoformat()}
    path = api.PRICE_HISTORY_PATH.format(id=company.security_id)
    return await client.get_pages(path, params, client.settings.page_size, client.settings.max_pages)


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


def contract() -> pl.Expr:
    return first_reason([
        *required("symbol", "business_date", "close"),
        *non_negative("close", "high", "low", "volume", "turnover", "trades"),
        *below("low", "high"),
    ])


PRICES = DataType(
    name="prices",
    table="prices",
    schema=SCHEMA,
    natural_key=("symbol", "business_date"),
    fetch=fetch,
    parse=parse,
    contract=contract,
    date_column="business_date",
)

__all__ = ["PRICES", "REJECT_REASON"]
