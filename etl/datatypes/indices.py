"""Index history: the NEPSE index, the sensitive and float indices and every sector sub-index.

The `indices` scope is NEPSE's index list, fetched once per run by the parent; each index's
daily history is then one Spring-paged call per window, newest first, like prices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
from loguru import logger

from etl import api
from etl.datatypes.base import (
    REJECT_REASON,
    Api,
    DataType,
    FetchWindow,
    Index,
    Listing,
    Row,
    Scope,
    below,
    clean_text,
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
)
from etl.payloads import check_json_list

if TYPE_CHECKING:
    import polars as pl

    from etl.settings import Settings

SCHEMA = pa.schema([
    ("index_id", pa.int64()),
    ("index_code", pa.string()),  # from the index list: 'NEPSE', 'SENSIND', 'BANKSUBIND'
    ("index_name", pa.string()),
    ("business_date", pa.string()),
    ("close", pa.float64()),  # closingIndex
    ("high", pa.float64()),  # highIndex
    ("low", pa.float64()),  # lowIndex
    ("change_pct", pa.float64()),  # percentageChange
    ("turnover", pa.float64()),  # turnoverValue, rupees
    ("open", pa.float64()),  # openIndex
    ("change", pa.float64()),  # absChange, points
    ("volume", pa.float64()),  # turnoverVolume, shares
    ("trades", pa.int64()),  # totalTransaction
    ("fifty_two_week_high", pa.float64()),
    ("fifty_two_week_low", pa.float64()),
])

_NUMBERS = {
    "close": "closingIndex",
    "high": "highIndex",
    "low": "lowIndex",
    "change_pct": "percentageChange",
    "turnover": "turnoverValue",
    "open": "openIndex",
    "change": "absChange",
    "volume": "turnoverVolume",
    "fifty_two_week_high": "fiftyTwoWeekHigh",
    "fifty_two_week_low": "fiftyTwoWeekLow",
}


def index_units(records: list[Any]) -> list[Index]:
    """Every index of the list once, in the list's order; an entry without an id or code cannot be fetched."""
    units: list[Index] = []
    seen: set[int] = set()
    for record in records:
        try:
            index_id = to_int(record.get("id"), "id") if isinstance(record, dict) else None
        except ValueError:
            index_id = None
        code = clean_text(record.get("indexCode")) if isinstance(record, dict) else None
        if index_id is None or code is None:
            logger.warning(f"index list entry without a usable id and code skipped: {str(record)[:200]}")
            continue
        if index_id not in seen:
            seen.add(index_id)
            units.append(Index(index_id, code.upper(), clean_text(record.get("indexName")) or ""))
    return units


async def list_indices(client: Api, settings: Settings) -> Listing:
    return Listing(index_units(await client.get_json(api.INDEX_LIST_PATH, validate=check_json_list)))


EACH_INDEX = Scope("indices", "index list", list_indices)


async def fetch(client: Api, index: Index, window: FetchWindow) -> list[Any]:
    return await fetch_daily_history(client, api.INDEX_HISTORY_PATH.format(id=index.id), window,
                                     convert=INDICES.page_converter(index))


def parse(records: Any, index: Index) -> list[Row]:
    identity = {"index_id": index.id, "index_code": index.code, "index_name": index.name or None}

    def parse_one(record: dict) -> Row:
        numbers = {column: to_float(record.get(field), field) for column, field in _NUMBERS.items()}
        return {
            **identity,
            "business_date": to_iso_date(record.get("businessDate"), "businessDate"),
            **numbers,
            "trades": to_int(record.get("totalTransaction"), "totalTransaction"),
        }

    return parse_each(records, parse_one, identity)


def parse_columns(records: Any, index: Index) -> pa.Table | None:
    """`parse` for a clean page, a column at a time (None: some value needs `parse`'s row-by-row checks)."""
    constants = {"index_id": pa.scalar(index.id, pa.int64()), "index_code": pa.scalar(index.code, pa.string()),
                 "index_name": pa.scalar(index.name or None, pa.string())}
    return daily_history_table(records, "totalTransaction", _NUMBERS, constants, SCHEMA)


def contract() -> pl.Expr:
    return first_reason(required("index_id", "business_date"))


# The price rules that make sense of an index day (an index level is never zero).
RULES = (
    below("high_below_low", "low", "high", why="the day's high is below its low"),
    outside("close_outside_range", "close", "low", "high", why="the close lies outside the day's [low, high]"),
    negative("negative_value", "close", "high", "low", "open", "turnover", "volume", "trades",
             why="an index level, turnover, volume or trades below zero"),
    missing("no_close", "close", "turnover", why="the day has no closing index"),
)


INDICES = DataType(
    name="indices",
    table="indices",
    schema=SCHEMA,
    natural_key=("index_id", "business_date"),
    scope=EACH_INDEX,
    fetch=fetch,
    parse=parse,
    parse_columns=parse_columns,
    contract=contract,
    rules=RULES,
    date_column="business_date",
    noun="index day",
)

__all__ = ["INDICES", "REJECT_REASON"]
