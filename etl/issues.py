"""The `data_issues` table: rows stored as the source published them that look wrong.

One row per (data type, row, rule): `key` is the flagged row's natural key as text (`key_text`,
the key columns joined by '|'), so a query can join back to the row's table. Any stage may record
issues here; re-recording one keeps its `first_seen`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

KEY_SEPARATOR = "|"
IssueRow = tuple[str, str, str | None]  # (key, rule, detail)

# A rule of every type, checked by the loader: the source sent one key twice in one answer with
# different values. The key holds one row, so the detail keeps the copies that were not stored.
DUPLICATE_DIFFERS = "duplicate_differs"
DUPLICATE_DIFFERS_WHY = "the same key published more than once in one answer, with different values"

# A rule of every number column, checked by the loader: the source sent NaN or an infinity (JSON's NaN and
# Infinity literals, which Python's json reads). The row is stored with that column NULL.
NOT_FINITE_SUFFIX = "_not_finite"


def not_finite_rule(column: str) -> str:
    """The rule flagging a NaN or infinite `column`: 'close_not_finite'."""
    return f"{column}{NOT_FINITE_SUFFIX}"


def key_text(values: Sequence[Any]) -> str:
    return KEY_SEPARATOR.join(str(value) for value in values)


def key_expr(columns: Sequence[str]) -> pl.Expr:
    """`key_text` as a Polars expression over the key columns."""
    import polars as pl

    return pl.concat_str([pl.col(column).cast(pl.String) for column in columns], separator=KEY_SEPARATOR)


def key_sql(columns: Sequence[str]) -> str:
    """`key_text` in SQL, for joining data_issues back to a table: "symbol || '|' || business_date"."""
    return f" || '{KEY_SEPARATOR}' || ".join(columns)


def ensure_issues_table(connection: sqlite3.Connection) -> None:
    connection.execute(
        "CREATE TABLE IF NOT EXISTS data_issues (data_type TEXT NOT NULL, key TEXT NOT NULL, rule TEXT NOT NULL, "
        "detail TEXT, first_seen TEXT NOT NULL, PRIMARY KEY (data_type, key, rule)) WITHOUT ROWID"
    )


def record_issues(connection: sqlite3.Connection, data_type: str, issues: Iterable[IssueRow]) -> int:
    """Add or refresh issues (first_seen kept); returns how many are new."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows = [(data_type, key, rule, detail, now) for key, rule, detail in issues]
    if not rows:
        return 0
    count_sql = "SELECT count(*) FROM data_issues WHERE data_type = ?"
    before = connection.execute(count_sql, (data_type,)).fetchone()[0]
    connection.executemany(
        "INSERT INTO data_issues (data_type, key, rule, detail, first_seen) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (data_type, key, rule) DO UPDATE SET detail = excluded.detail "
        "WHERE data_issues.detail IS NOT excluded.detail",
        rows,
    )
    return connection.execute(count_sql, (data_type,)).fetchone()[0] - before


def clear_resolved(connection: sqlite3.Connection, data_type: str, rules: Sequence[str], checked_keys: pl.Series,
                   still_flagged: set[tuple[str, str]]) -> int:
    """Drop issues of `rules` whose row was checked again (its key is in `checked_keys`) and no longer
    breaks the rule: the source corrected it. Returns how many were dropped."""
    if not rules:
        return 0
    placeholders = ", ".join("?" for _ in rules)
    existing = connection.execute(
        f"SELECT key, rule FROM data_issues WHERE data_type = ? AND rule IN ({placeholders})", (data_type, *rules)
    ).fetchall()
    if not existing:
        return 0
    import polars as pl

    candidates = pl.DataFrame(existing, schema={"key": pl.String, "rule": pl.String}, orient="row")
    rechecked = candidates.filter(pl.col("key").is_in(checked_keys.implode()))
    resolved = [(data_type, key, rule) for key, rule in rechecked.iter_rows() if (key, rule) not in still_flagged]
    connection.executemany("DELETE FROM data_issues WHERE data_type = ? AND key = ? AND rule = ?", resolved)
    return len(resolved)
