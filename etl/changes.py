"""What a run changed, unit by unit, and the summary's "what changed since the last run" lines.

The extract compares each unit's fresh rows with the unit's previous raw file just before
replacing it (a small file, already at hand for the incremental merge), so a daily run can say
"NABIL: 1 new price day; ADBL: new dividend 2082/83" without asking the database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from etl.datatypes import REGISTRY
from etl.datatypes.base import DataType, Row, comparable
from etl.events import count_noun

MAX_CHANGE_LINES = 12  # a whole market changes every day: the rest is in the run report


@dataclass(frozen=True)
class UnitChange:
    symbol: str  # the unit's key: a symbol, an index code
    new: int
    revised: int
    description: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(previous: pa.Table | None, fresh: pa.Table, data_type: DataType, key: str) -> UnitChange | None:
    """How `fresh` differs from the unit's previous file; None when it does not, or there was none."""
    if previous is None:
        return None
    key_columns = list(data_type.natural_key)
    if not set(key_columns) <= set(previous.column_names):
        return None
    value_columns = [column for column in data_type.columns
                     if column not in key_columns and column in previous.column_names]
    before = {_values(row, key_columns): _values(row, value_columns)
              for row in previous.select(key_columns + value_columns).to_pylist()}
    added: list[Row] = []
    revised = 0
    for row in fresh.select(data_type.columns).to_pylist():
        old_values = before.get(_values(row, key_columns))
        if old_values is None:
            added.append(row)
        elif old_values != _values(row, value_columns):
            revised += 1
    if not added and not revised:
        return None
    parts = []
    if added:
        parts.append(data_type.describe_new(added) if data_type.describe_new else
                     count_noun(len(added), f"new {data_type.noun}"))
    if revised:
        parts.append(count_noun(revised, f"revised {data_type.noun}"))
    return UnitChange(key, len(added), revised, ", ".join(parts))


def _values(row: Row, columns: list[str]) -> tuple:
    return comparable(row.get(column) for column in columns)


UNITS = ("company or index", "companies or indices")


def is_news(type_name: str) -> bool:
    """A change of a non-incremental type (a dividend, a report) is news; one more price day is routine."""
    data_type = REGISTRY.get(type_name)
    return data_type is not None and not data_type.incremental


def summary_lines(types: Mapping[str, Mapping[str, Any]], news_first: Callable[[str], bool] = is_news) -> list[str]:
    """One line per unit that changed, the most newsworthy first, capped for a large market.
    Nothing is said when nothing was fetched (--load-only)."""
    per_unit: dict[str, list[tuple[str, str]]] = {}
    first_fetched: dict[str, int] = {}
    fetched = 0
    for name, stats in types.items():
        if stats.get("first_fetched"):
            first_fetched[name] = int(stats["first_fetched"])
        fetched += int(stats.get("companies_ok") or 0)
        for change in stats.get("changes") or []:
            per_unit.setdefault(str(change.get("symbol")), []).append((name, str(change.get("description"))))
    if not fetched:
        return []
    lines = []
    if per_unit:
        def rank(item: tuple[str, list[tuple[str, str]]]) -> tuple:
            key, parts = item
            return (-sum(news_first(name) for name, _ in parts), -len(parts), key)

        ordered = sorted(per_unit.items(), key=rank)
        lines.append(f"What changed since the last run ({count_noun(len(ordered), *UNITS)}):")
        lines += [f"  {key}: {'; '.join(text for _, text in parts)}" for key, parts in ordered[:MAX_CHANGE_LINES]]
        if len(ordered) > MAX_CHANGE_LINES:
            lines.append(f"  ... and {len(ordered) - MAX_CHANGE_LINES:,} more (every change is in the run report)")
    elif fetched > sum(first_fetched.values()):
        lines.append("Nothing changed since the last run.")
    if first_fetched:
        counts = ", ".join(f"{name} {count:,}" for name, count in first_fetched.items())
        lines.append(f"Fetched for the first time (nothing to compare with): {counts}.")
    return lines
