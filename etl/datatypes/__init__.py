"""The registry of data types: adding a type is one module and one line here."""

from __future__ import annotations

from collections.abc import Sequence

from etl.datatypes.base import DataType
from etl.datatypes.dividends import DIVIDENDS
from etl.datatypes.indices import INDICES
from etl.datatypes.prices import PRICES
from etl.datatypes.profiles import PROFILES
from etl.datatypes.reports import REPORTS

# One line per type; the order is the default order of --types and of the summary.
REGISTRY: dict[str, DataType] = {data_type.name: data_type for data_type in (
    PRICES,
    REPORTS,
    DIVIDENDS,
    PROFILES,
    INDICES,
)}


def get(name: str) -> DataType:
    return REGISTRY[name]


def select(names: Sequence[str]) -> list[DataType]:
    """The named types in the order given, or every registered type when none is named.

    Raises ValueError naming the unknown ones and the choices."""
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown type {', '.join(unknown)}; choose from {', '.join(REGISTRY)}")
    return [REGISTRY[name] for name in names or REGISTRY]
