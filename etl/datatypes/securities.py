"""The company list: fetched once per run by the parent; it defines the universe."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from etl import api
from etl.datatypes.base import (
    Api,
    Company,
    DataType,
    FetchWindow,
    Row,
    clean_text,
    first_reason,
    parse_each,
    required,
    to_int,
)
from etl.payloads import check_json_list

if TYPE_CHECKING:
    import polars as pl

SCHEMA = pa.schema([
    ("security_id", pa.int64()),
    ("symbol", pa.string()),
    ("company_name", pa.string()),
    ("security_name", pa.string()),
    ("status", pa.string()),  # A active, D delisted, S suspended
    ("instrument_type", pa.string()),
    ("sector", pa.string()),
    ("email", pa.string()),
    ("website", pa.string()),
    ("regulatory_body", pa.string()),
])


async def fetch(client: Api, company: Company | None = None, window: FetchWindow | None = None) -> Any:
    return await client.get_json(api.COMPANY_LIST_PATH, validate=check_json_list)


def parse(records: Any, company: Company | None = None) -> list[Row]:
    def parse_one(record: dict) -> Row:
        symbol = clean_text(record.get("symbol"))
        return {
            "security_id": to_int(record.get("id"), "id"),
            "symbol": symbol.upper() if symbol else None,
            "company_name": clean_text(record.get("companyName")),
            "security_name": clean_text(record.get("securityName")),
            "status": clean_text(record.get("status")),
            "instrument_type": clean_text(record.get("instrumentType")),
            "sector": clean_text(record.get("sectorName")),
            "email": clean_text(record.get("companyEmail")),
            "website": clean_text(record.get("website")),
            "regulatory_body": clean_text(record.get("regulatoryBody")),
        }

    return parse_each(records, parse_one, {})


def contract() -> pl.Expr:
    return first_reason(required("security_id", "symbol"))


SECURITIES = DataType(
    name="securities",
    table="securities",
    schema=SCHEMA,
    natural_key=("security_id",),
    unique=("symbol",),
    fetch=fetch,
    parse=parse,
    contract=contract,
    key_includes_symbol=False,
)


def active_companies(rows: list[Row]) -> list[Company]:
    """The default universe: every active company, in the list's order, each symbol once."""
    seen: set[str] = set()
    companies: list[Company] = []
    for row in rows:
        symbol = row.get("symbol")
        if row.get("status") != "A" or not symbol or row.get("security_id") is None or symbol in seen:
            continue
        seen.add(symbol)
        companies.append(Company(row["security_id"], symbol, row.get("company_name") or ""))
    return companies
