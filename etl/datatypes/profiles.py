"""Company profiles: one object per company."""

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
)
from etl.datatypes.securities import COMPANIES
from etl.payloads import check_json_object

if TYPE_CHECKING:
    import polars as pl

SCHEMA = pa.schema([
    ("symbol", pa.string()),
    ("company_name", pa.string()),
    ("email", pa.string()),
    ("contact_person", pa.string()),
    ("address", pa.string()),
    ("town", pa.string()),
    ("phone", pa.string()),
    ("fax", pa.string()),
    ("address_type", pa.string()),
    ("logo_path", pa.string()),
    ("profile", pa.string()),
    ("security_id", pa.int64()),
])

_COLUMN_KEYS = {
    "company_name": "companyName",
    "email": "companyEmail",
    "contact_person": "companyContactPerson",
    "address": "addressField",
    "town": "town",
    "phone": "phoneNumber",
    "fax": "fax",
    "address_type": "addressType",
    "logo_path": "logoFilePath",
    "profile": "companyProfile",
}


async def fetch(client: Api, company: Company, window: FetchWindow) -> Any:
    return await client.get_json(api.PROFILE_PATH.format(id=company.security_id), validate=check_json_object)


def parse(record: Any, company: Company) -> list[Row]:
    def parse_one(item: dict) -> Row:
        row: Row = {column: clean_text(item.get(key)) for column, key in _COLUMN_KEYS.items()}
        return {"symbol": company.symbol, **row, "security_id": company.security_id}

    return parse_each([record], parse_one, {"symbol": company.symbol, "security_id": company.security_id})


def contract() -> pl.Expr:
    return first_reason(required("symbol"))


PROFILES = DataType(
    name="profiles",
    table="profiles",
    schema=SCHEMA,
    natural_key=("symbol",),
    scope=COMPANIES,
    fetch=fetch,
    parse=parse,
    contract=contract,
    noun="profile",
)
