"""The registry of data types: adding a type is one module and one line here."""

from __future__ import annotations

from etl.datatypes.base import DataType
from etl.datatypes.dividends import DIVIDENDS
from etl.datatypes.prices import PRICES
from etl.datatypes.profiles import PROFILES
from etl.datatypes.reports import REPORTS

REGISTRY: dict[str, DataType] = {data_type.name: data_type for data_type in (PRICES, REPORTS, DIVIDENDS, PROFILES)}


def get(name: str) -> DataType:
    return REGISTRY[name]
