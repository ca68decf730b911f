"""Dividend declarations: one unpaged call per company, keyed on NEPSE's record id
(a company can declare more than once in a fiscal year)."""

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
    as_object,
    clean_text,
    describe_by,
    first_reason,
    fiscal_year,
    negative,
    parse_each,
    required,
    to_float,
    to_int,
)
from etl.datatypes.securities import COMPANIES
from etl.payloads import check_json_list

if TYPE_CHECKING:
    import polars as pl

SCHEMA = pa.schema([
    ("dividend_id", pa.int64()),
    ("symbol", pa.string()),
    ("fiscal_year", pa.string()),
    ("cash_pct", pa.float64()),
    ("bonus_pct", pa.float64()),
    ("right_pct", pa.float64()),
    ("headline", pa.string()),
    ("published_at", pa.string()),  # the record's modifiedDate, Nepal local time
    ("news_id", pa.int64()),
    ("notice_id", pa.int64()),
    ("remarks", pa.string()),
    ("expiry_date", pa.string()),
    ("security_id", pa.int64()),
])


async def fetch(client: Api, company: Company, window: FetchWindow) -> list[Any]:
    return await client.get_json(api.DIVIDENDS_PATH.format(id=company.security_id), validate=check_json_list)


def parse(records: Any, company: Company) -> list[Row]:
    def parse_one(record: dict) -> Row:
        news = as_object(record.get("companyNews"), "companyNews")
        notice = as_object(news.get("dividendsNotice"), "companyNews.dividendsNotice")
        financial_year = as_object(notice.get("financialYear"), "dividendsNotice.financialYear")
        return {
            "dividend_id": to_int(record.get("id"), "id"),
            "symbol": company.symbol,
            "fiscal_year": fiscal_year(financial_year.get("fyNameNepali") or financial_year.get("fyName")),
            "cash_pct": to_float(notice.get("cashDividend"), "cashDividend"),
            "bonus_pct": to_float(notice.get("bonusShare"), "bonusShare"),
            "right_pct": to_float(notice.get("rightShare"), "rightShare"),
            "headline": clean_text(news.get("newsHeadline")),
            "published_at": clean_text(record.get("modifiedDate")),
            "news_id": to_int(news.get("id"), "companyNews.id"),
            "notice_id": to_int(notice.get("id"), "dividendsNotice.id"),
            "remarks": clean_text(notice.get("remarks")),
            "expiry_date": clean_text(news.get("expiryDate")),
            "security_id": company.security_id,
        }

    return parse_each(records, parse_one, {"symbol": company.symbol, "security_id": company.security_id})


def contract() -> pl.Expr:
    return first_reason(required("dividend_id", "symbol"))


RULES = (negative("negative_percent", "cash_pct", "bonus_pct", "right_pct",
                  why="a cash, bonus or right percentage below zero"),)


DIVIDENDS = DataType(
    name="dividends",
    table="dividends",
    schema=SCHEMA,
    natural_key=("dividend_id",),
    scope=COMPANIES,
    fetch=fetch,
    parse=parse,
    contract=contract,
    rules=RULES,
    key_includes_symbol=False,
    noun="dividend",
    describe_new=describe_by("dividend", lambda row: row.get("fiscal_year")),
)
