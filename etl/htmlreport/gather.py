"""The data behind each chart of the HTML report: plain functions returning Polars frames or dicts.

Nothing here draws; `charts.py` turns these frames into Vega-Lite specs. Everything is aggregated
here, in SQLite or Polars, so that the page carries hundreds of kilobytes, not the market's rows.
"""

from __future__ import annotations

import math
import shlex
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from etl.settings import SPECS, Settings

# ---------------------------------------------------------------------------------------------------
# The run: request starts per second against the budget
# ---------------------------------------------------------------------------------------------------

MAX_RATE_POINTS = 300  # per type: a long run is drawn in wider buckets, each still in starts per second
PARENT_LABEL_NAME = "company list"


@dataclass(frozen=True)
class RunActivity:
    rate: pl.DataFrame  # second (bucket start, from the run's start), type, rps (starts per second)
    budget: pl.DataFrame  # second, rps: the host budget in force from that second on
    marks: pl.DataFrame  # second, type, kind (retry | throttle | failure), detail
    bucket_s: int
    duration_s: float
    requests: int


def _type_of(event: Mapping[str, Any]) -> str:
    label = event.get("type") or event.get("label") or "?"
    return PARENT_LABEL_NAME if label == "main" else str(label)


def bucket_seconds(duration_s: float) -> int:
    return max(1, math.ceil(duration_s / MAX_RATE_POINTS))


def _distinct_rate_changes(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Every process reports the shared host's rate change: keep the first report of each."""
    kept: list[Mapping[str, Any]] = []
    last: tuple[Any, Any] | None = None
    for event in events:
        if event["event"] == "rate_changed":
            change = (event.get("rate"), event.get("old_rate"))
            if change == last:
                continue
            last = change
        kept.append(event)
    return kept


def run_activity(events: Iterable[Mapping[str, Any]], budget_rps: float, run_start: float | None = None) -> RunActivity:
    """Request starts per second per type, the host budget over time, and the retries, throttle halvings
    and company failures as marks, all in seconds from the run's start."""
    events = _distinct_rate_changes(events)
    starts = [(float(e["started"]), _type_of(e)) for e in events if e["event"] == "request" and "started" in e]
    times = [s for s, _ in starts] + [float(e["t"]) for e in events if isinstance(e.get("t"), (int, float))]
    origin = run_start if run_start is not None else (min(times) if times else 0.0)
    duration = max(times) - origin if times else 0.0
    bucket = bucket_seconds(duration)
    frame = pl.DataFrame({"at": [s - origin for s, _ in starts], "type": [t for _, t in starts]},
                         schema={"at": pl.Float64, "type": pl.String})
    rate = (frame.with_columns(second=(pl.col("at") // bucket * bucket).cast(pl.Int64))
            .group_by("second", "type").agg(rps=pl.len() / bucket)
            .sort("second", "type"))
    return RunActivity(rate, _budget_steps(events, budget_rps, origin), _marks(events, origin, bucket), bucket,
                       duration, len(starts))


def _budget_steps(events: list[Mapping[str, Any]], budget_rps: float, origin: float) -> pl.DataFrame:
    """The host rate over time: from the parent's `host_rate` samples when the run has them (they are on
    time), else from the processes' `rate_changed` reports (a step up is reported late)."""
    kind = "host_rate" if any(event["event"] == "host_rate" for event in events) else "rate_changed"
    seconds, rates = [0.0], [float(budget_rps)]
    for event in events:
        if event["event"] == kind and isinstance(event.get("rate"), (int, float)):
            seconds.append(max(0.0, float(event["t"]) - origin))
            rates.append(float(event["rate"]))
    return pl.DataFrame({"second": seconds, "rps": rates}).sort("second", maintain_order=True)


def _marks(events: list[Mapping[str, Any]], origin: float, bucket: int) -> pl.DataFrame:
    """Retries, throttle halvings and company failures, counted per bucket, type and kind (one example
    detail each)."""
    rows: list[dict[str, Any]] = []
    for event in events:
        name = event["event"]
        if name == "retry":
            kind, detail = "retry", f"{event.get('reason', '')} (attempt {event.get('attempt', '?')})"
        elif name == "rate_changed" and float(event.get("rate") or 0) < float(event.get("old_rate") or 0):
            kind, detail = "throttle", str(event.get("reason", "host rate halved"))
        elif name == "company_failed":
            kind, detail = "failure", f"{event.get('symbol', '?')}: {event.get('reason', '')}"
        else:
            continue
        rows.append({"at": float(event["t"]) - origin, "type": _type_of(event), "kind": kind, "detail": detail})
    frame = pl.DataFrame(rows, schema={"at": pl.Float64, "type": pl.String, "kind": pl.String, "detail": pl.String})
    return (frame.group_by((pl.col("at") // bucket).alias("bucket"), "type", "kind")
            .agg(second=pl.col("at").min(), count=pl.len().cast(pl.Int64), detail=pl.col("detail").first())
            .drop("bucket").sort("second", "kind"))


# ---------------------------------------------------------------------------------------------------
# Coverage: companies by month, shaded by the share of market trading days with a price row
# ---------------------------------------------------------------------------------------------------

TRADING_DAY_QUORUM = 0.5  # a market trading day: more than half of the securities then trading traded


def has_table(connection: sqlite3.Connection, table: str) -> bool:
    found = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    return found.fetchone() is not None


def price_days(connection: sqlite3.Connection) -> pl.DataFrame:
    """Every (symbol, business_date) of the prices table, in one scan of it.

    SQLite hands over one row per company and month, its days packed in one string, and Polars unpacks
    them: a million Python tuples would cost more than the scan itself.
    """
    schema = {"symbol": pl.String, "business_date": pl.String}
    if not has_table(connection, "prices"):
        return pl.DataFrame(schema=schema)
    packed = pl.DataFrame(connection.execute(
        "SELECT symbol, substr(business_date, 1, 8), group_concat(substr(business_date, 9, 2), '') FROM prices "
        "WHERE length(business_date) = 10 GROUP BY symbol, substr(business_date, 1, 8)").fetchall(),
        schema={"symbol": pl.String, "month": pl.String, "days": pl.String}, orient="row")
    return (packed.with_columns(day=pl.col("days").str.extract_all(r"\d\d")).explode("day")
            .select("symbol", business_date=pl.col("month") + pl.col("day")))


def market_trading_days(days: pl.DataFrame) -> pl.DataFrame:
    """The days on which most active securities traded (business_date, traded, active), from `price_days`.

    A security counts as active on a day that lies between its first and last price row, so a company
    listed later or delisted earlier does not make the market look closed.
    """
    daily = days.group_by("business_date").agg(traded=pl.len().cast(pl.Int64)).sort("business_date")
    spans = days.group_by("symbol").agg(first=pl.col("business_date").min(), last=pl.col("business_date").max())
    firsts, lasts = spans["first"].sort(), spans["last"].sort()
    active = firsts.search_sorted(daily["business_date"], side="right") - lasts.search_sorted(
        daily["business_date"], side="left")
    return (daily.with_columns(active=active.cast(pl.Int64))
            .filter(pl.col("traded") > pl.col("active") * TRADING_DAY_QUORUM))


def _securities(connection: sqlite3.Connection) -> pl.DataFrame:
    """symbol, group (an equity's sector, any other security's kind: they trade thinly), status."""
    schema = {"symbol": pl.String, "group": pl.String, "status": pl.String}
    if not has_table(connection, "securities"):
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(connection.execute(
        "SELECT symbol, CASE WHEN instrument_type IS NULL OR instrument_type = 'Equity' THEN sector "
        "ELSE instrument_type END, status FROM securities").fetchall(), schema=schema, orient="row")


def coverage(connection: sqlite3.Connection) -> pl.DataFrame:
    """One row per company and month of its span: symbol, group (the sector of an equity, the kind of any
    other security: debentures, mutual funds), month (YYYY-MM), days (market trading days of that month it
    has a price row for), expected (market trading days of the month within its span) and
    share = days / expected.

    A company's span runs from its first price row to the market's last trading day, or to its own last
    row when it is no longer active (delisted or suspended), so a listing mid-window is not a gap.
    """
    return coverage_cells(price_days(connection), _securities(connection))


def coverage_cells(days: pl.DataFrame, securities: pl.DataFrame) -> pl.DataFrame:
    schema = {"symbol": pl.String, "group": pl.String, "month": pl.String, "days": pl.Int64,
              "expected": pl.Int64, "share": pl.Float64}
    trading_days = market_trading_days(days)["business_date"]
    if trading_days.is_empty():
        return pl.DataFrame(schema=schema)
    market_last = trading_days.max()
    spans = (days.group_by("symbol").agg(first=pl.col("business_date").min(), last=pl.col("business_date").max())
             .join(securities, on="symbol", how="left")
             .with_columns(group=pl.col("group").fill_null("(no sector)"),
                           end=pl.when(pl.col("status").is_null() | (pl.col("status") == "A"))
                           .then(pl.lit(market_last)).otherwise(pl.col("last"))))
    months = (pl.DataFrame({"month": trading_days.str.slice(0, 7).unique().sort()})
              .with_columns(month_start=pl.col("month") + "-01", month_end=pl.col("month") + "-99"))
    cells = (spans.join(months, how="cross")
             .filter((pl.col("month_end") >= pl.col("first")) & (pl.col("month_start") <= pl.col("end")))
             .with_columns(lo=pl.max_horizontal("first", "month_start"), hi=pl.min_horizontal("end", "month_end")))
    expected = (trading_days.search_sorted(cells["hi"], side="right")
                - trading_days.search_sorted(cells["lo"], side="left"))
    traded = (days.join(pl.DataFrame({"business_date": trading_days}), on="business_date", how="semi")
              .group_by("symbol", month=pl.col("business_date").str.slice(0, 7)).agg(days=pl.len().cast(pl.Int64)))
    return (cells.with_columns(expected=expected.cast(pl.Int64))
            .filter(pl.col("expected") > 0)
            .join(traded, on=["symbol", "month"], how="left")
            .with_columns(days=pl.col("days").fill_null(0))
            .with_columns(share=pl.col("days") / pl.col("expected"))
            .sort("group", "symbol", "month")
            .select(list(schema)))


# ---------------------------------------------------------------------------------------------------
# Data quality
# ---------------------------------------------------------------------------------------------------


def quality_counts(connection: sqlite3.Connection) -> pl.DataFrame:
    """Rows per (kind, data_type, rule): kind 'quarantined' (the quarantine table, by reason) or
    'flagged' (the data_issues table, by rule, when a database has it)."""
    parts = []
    if has_table(connection, "quarantine"):
        parts += connection.execute("SELECT 'quarantined', data_type, reason, COUNT(*) FROM quarantine "
                                    "GROUP BY data_type, reason").fetchall()
    if has_table(connection, "data_issues"):
        parts += connection.execute("SELECT 'flagged', data_type, rule, COUNT(*) FROM data_issues "
                                    "GROUP BY data_type, rule").fetchall()
    return pl.DataFrame(parts, schema={"kind": pl.String, "data_type": pl.String, "rule": pl.String,
                                       "rows": pl.Int64}, orient="row").sort("kind", "rows", descending=[False, True])


def latest_failures(run_report: Mapping[str, Any] | None, limit: int = 50) -> pl.DataFrame:
    """The run's failed companies (type, symbol, reason, attempts), at most ``limit``."""
    rows = [{"type": str(error.get("type", name)), "symbol": str(error.get("symbol", "?")),
             "reason": str(error.get("reason", "")), "attempts": int(error.get("attempts") or 0)}
            for name, entry in ((run_report or {}).get("types") or {}).items()
            for error in entry.get("errors") or []]
    return pl.DataFrame(rows[:limit], schema={"type": pl.String, "symbol": pl.String, "reason": pl.String,
                                              "attempts": pl.Int64})


# The settings that say what was fetched from where and into which output: a retry must repeat them.
_CARRIED = ("since", "until", "full", "include_promoter", "demo", "demo_seed", "demo_companies", "output",
            "base_url", "tls_verify", "ca_bundle", "max_rps")
_UNIVERSE = ("symbols", "limit")  # carried too when a whole type failed


def _flags(arguments: Mapping[str, Any], names: tuple[str, ...]) -> list[str]:
    """The flags that give these settings the values the run had, where they differ from the defaults."""
    defaults = Settings()
    flags = []
    for spec in SPECS:
        value = arguments.get(spec.name)
        if spec.name not in names or value is None or value == [] or str(value) == str(getattr(defaults, spec.name)):
            continue
        if spec.name == "base_url" and arguments.get("demo"):
            continue  # the demo starts its own simulator on a free port
        if isinstance(value, list):
            value = ",".join(map(str, value))
        flags.append(spec.option if spec.is_switch else f"{spec.option} {shlex.quote(str(value))}")
    return flags


def retry_commands(run_report: Mapping[str, Any] | None, program: str = "nepse-etl") -> list[str]:
    """One command per type that had failures, fetching only the companies that failed (all of the run's
    companies when the whole type failed)."""
    failures = latest_failures(run_report, limit=10**9)
    arguments = (run_report or {}).get("arguments") or {}
    commands = []
    for (type_name,), group in failures.group_by("type", maintain_order=True):
        symbols = group["symbol"].unique(maintain_order=True).to_list()
        if "*" in symbols:
            parts = ["--types", str(type_name), *_flags(arguments, _UNIVERSE)]
        else:
            parts = ["--types", str(type_name), "--symbols", shlex.quote(",".join(symbols))]
        commands.append(" ".join([program, *parts, *_flags(arguments, _CARRIED)]))
    return commands


# ---------------------------------------------------------------------------------------------------
# The database at a glance
# ---------------------------------------------------------------------------------------------------

_DATE_COLUMNS = ("business_date", "fiscal_year", "published_at", "started_at", "first_seen")


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def database_glance(connection: sqlite3.Connection) -> pl.DataFrame:
    """Every table: rows, and the range of its date column (the first of _DATE_COLUMNS it has)."""
    rows = []
    tables = [name for (name,) in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    for table in tables:
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({_quoted(table)})")}
        date_column = next((column for column in _DATE_COLUMNS if column in columns), None)
        if date_column:
            count, first, last = connection.execute(
                f"SELECT COUNT(*), MIN({_quoted(date_column)}), MAX({_quoted(date_column)}) "
                f"FROM {_quoted(table)}").fetchone()
        else:
            (count,), first, last = connection.execute(f"SELECT COUNT(*) FROM {_quoted(table)}").fetchone(), None, None
        rows.append({"table": table, "rows": count, "date_column": date_column, "first": _text(first),
                     "last": _text(last)})
    return pl.DataFrame(rows, schema={"table": pl.String, "rows": pl.Int64, "date_column": pl.String,
                                      "first": pl.String, "last": pl.String})


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def database_size(db_path: Path) -> int:
    """Bytes on disk, write-ahead log included."""
    return sum(path.stat().st_size for path in (db_path, db_path.with_name(db_path.name + "-wal")) if path.is_file())
