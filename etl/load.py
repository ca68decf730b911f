"""Load: raw-zone Parquet -> contract check -> dedupe on the natural key -> SQLite upsert.

Each table is committed in one transaction. The upsert only rewrites a row whose
values changed, so counting SQLite's changes gives new / updated / unchanged, and a
second load of the same files writes nothing. Rows that cannot be stored (no key, a value
that cannot be read) go to the `quarantine` table with their reason; rows that are stored
but break a plausibility rule of their type are listed in `data_issues`; files that are not
ours go to `<output>/quarantine/files/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger

from etl.datatypes.base import FETCHED_AT, REJECT_REASON, DataType, any_of, comparable, values_text
from etl.diskspace import disk_full_message
from etl.errors import DatabaseNotUsable
from etl.issues import (
    DUPLICATE_DIFFERS,
    clear_resolved,
    ensure_issues_table,
    key_expr,
    key_text,
    not_finite_rule,
    record_issues,
)
from etl.rawzone import SCHEMA_VERSION, RawZone, partition_symbol, read_meta

APPLICATION_ID = 0x4E455053  # "NEPS": marks a database as ours
SQLITE_HEADER = b"SQLite format 3\x00"
FILES_PER_BATCH = 200  # bounds memory: a batch of companies at a time where the key allows it
_REASON = "_reason"
_ROW = "_row"  # a row's place in its batch, which _Origins turns into the raw file and row it came from
_ISSUE_SCHEMA = {"key": pl.String, "rule": pl.String, "detail": pl.String}
_KEY = "_key"
PROBE_BUSY_TIMEOUT_S = 0.5


@dataclass
class LoadCounts:
    files: int = 0
    rows_read: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    flagged: int = 0  # stored rows that break at least one plausibility rule
    flagged_by_rule: dict[str, int] = field(default_factory=dict)
    issues_new: int = 0  # data_issues rows first seen in this load
    bad_files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


# ---- the database


def open_database(path: Path, busy_timeout_s: float = 5.0) -> sqlite3.Connection:
    """Open (creating if needed) our SQLite database; refuse one that is not ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise DatabaseNotUsable(f"{path} is a directory, not a database file; move it away or choose another "
                                "--output")
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as handle:
            if handle.read(16) != SQLITE_HEADER:
                raise DatabaseNotUsable(f"{path} is not an SQLite database; move it away or choose another --output")
    try:
        connection = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
        _claim(connection, path)  # before anything that writes: a database not ours stays untouched
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA cache_size=-65536")  # 64 MiB: a whole table's index stays in memory
    except sqlite3.OperationalError as exc:
        raise _usable_error(exc, path) from None
    except sqlite3.DatabaseError as exc:
        message = f"{path} cannot be read as SQLite ({exc}); move it away or choose another --output"
        raise DatabaseNotUsable(message) from None
    return connection


def probe_write_lock(path: Path) -> None:
    """Before fetching: take and release the write lock, so that a database another program is
    writing (which WAL mode lets readers past) is found now, not after the whole extract."""
    if not path.exists():
        return
    connection = open_database(path, PROBE_BUSY_TIMEOUT_S)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        raise _usable_error(exc, path) from None
    finally:
        connection.close()


def _usable_error(exc: sqlite3.Error, path: Path) -> DatabaseNotUsable:
    if "locked" in str(exc) or "busy" in str(exc):
        holders = _holders(path)
        named = f" ({', '.join(holders)})" if holders else ""
        return DatabaseNotUsable(f"{path} is locked: held for writing by another program{named}; close it or "
                                 "let it finish its transaction, then run again (--load-only loads what is "
                                 "already fetched)")
    if "full" in str(exc):
        return DatabaseNotUsable(f"{path} is full: " + disk_full_message(
            path, "free some space, then run with --load-only (the raw zone is intact)"))
    return DatabaseNotUsable(f"{path}: {exc}; check the file and its permissions")


def _roll_back(connection: sqlite3.Connection) -> None:
    """SQLite may already have rolled back (SQLITE_FULL does): a second ROLLBACK would raise
    'no transaction is active' and hide the real cause."""
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


def _holders(path: Path) -> list[str]:
    """Other processes with the database open, as 'name, pid N' (Linux /proc; empty elsewhere)."""
    wanted = {str(path.resolve()), f"{path.resolve()}-wal"}
    found: list[str] = []
    for process in Path("/proc").glob("[0-9]*"):
        if process.name == str(os.getpid()):
            continue
        try:
            if any(os.readlink(fd) in wanted for fd in (process / "fd").iterdir()):
                found.append(f"{(process / 'comm').read_text().strip()}, pid {process.name}")
        except OSError:
            continue
    return found[:3]


def _claim(connection: sqlite3.Connection, path: Path) -> None:
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    if application_id == APPLICATION_ID:
        return
    tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    if application_id != 0 or tables:
        raise DatabaseNotUsable(f"{path} is an SQLite database that nepse-etl did not create; "
                                "choose another --output or move the file away")
    connection.execute(f"PRAGMA application_id={APPLICATION_ID}")


def _table_definition(data_type: DataType, table: str) -> str:
    columns = data_type.sqlite_columns()
    key = data_type.natural_key
    if len(key) == 1 and dict(columns)[key[0]] == "INTEGER":
        definitions = [f"{name} {kind} PRIMARY KEY" if name == key[0] else f"{name} {kind}" for name, kind in columns]
        return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(definitions)})"
    definitions = [f"{name} {kind}" for name, kind in columns] + [f"PRIMARY KEY ({', '.join(key)})"]
    # WITHOUT ROWID: the key is the only index, one B-tree to write, not two.
    return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(definitions)}) WITHOUT ROWID"


def ensure_table(connection: sqlite3.Connection, data_type: DataType) -> None:
    table = data_type.table
    connection.execute(_table_definition(data_type, table))
    present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
    for name, kind in data_type.sqlite_columns():
        if name not in present:  # a column added in a later version of the type
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    if any(row[3] == "u" for row in connection.execute(f"PRAGMA index_list({table})")):
        _drop_unique_constraints(connection, data_type, present)
    for statement in data_type.indexes:
        connection.execute(statement)


def _drop_unique_constraints(connection: sqlite3.Connection, data_type: DataType, present: set[str]) -> None:
    """An older version declared `UNIQUE (symbol)` on securities; SQLite cannot drop a constraint,
    so the table is rebuilt in place, in one transaction, keeping every row."""
    table, rebuilt = data_type.table, f"{data_type.table}_rebuilt"
    kept = ", ".join(column for column in data_type.columns if column in present)
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute(f"DROP TABLE IF EXISTS {rebuilt}")
        connection.execute(_table_definition(data_type, rebuilt))
        connection.execute(f"INSERT INTO {rebuilt} ({kept}) SELECT {kept} FROM {table}")
        connection.execute(f"DROP TABLE {table}")
        connection.execute(f"ALTER TABLE {rebuilt} RENAME TO {table}")
        connection.execute("COMMIT")
    except BaseException:
        _roll_back(connection)
        raise
    logger.info(f"{table}: dropped a unique constraint left by an older version (table rebuilt in place)")


def ensure_quarantine_table(connection: sqlite3.Connection) -> None:
    connection.execute(
        "CREATE TABLE IF NOT EXISTS quarantine (data_type TEXT NOT NULL, record_hash TEXT NOT NULL, "
        "symbol TEXT, reason TEXT NOT NULL, record TEXT NOT NULL, source TEXT, first_seen TEXT, "
        "PRIMARY KEY (data_type, record_hash))"
    )


# Reasons that earlier versions quarantined rows for and that are plausibility rules now: those rows are in
# the raw zone, so the load stores them (and flags them); their quarantine entries would say otherwise.
_NOW_FLAGGED_REASONS = ("high < low", "no close", "negative %")


def forget_rows_now_flagged(connection: sqlite3.Connection, data_type: DataType) -> None:
    conditions = " OR ".join("reason LIKE ?" for _ in _NOW_FLAGGED_REASONS)
    connection.execute(f"DELETE FROM quarantine WHERE data_type = ? AND ({conditions})",
                       (data_type.name, *_NOW_FLAGGED_REASONS))


def upsert_sql(data_type: DataType) -> str:
    table, columns, key = data_type.table, data_type.columns, data_type.natural_key
    others = [column for column in columns if column not in key]
    assignments = ", ".join(f"{column} = excluded.{column}" for column in others)
    changed = " OR ".join(f"{table}.{column} IS NOT excluded.{column}" for column in others)
    placeholders = ", ".join("?" for _ in columns)
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {assignments} WHERE {changed}")


# ---- reading the raw zone


def _expected_polars_schema(data_type: DataType) -> pl.Schema:
    frame = pl.from_arrow(data_type.raw_schema.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.schema


def _normalise(table: pa.Table, data_type: DataType) -> pl.DataFrame:
    """Bring a file written by any version of us to the type's raw schema; a value that will not
    cast becomes null with a reject reason rather than failing the whole file."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    expressions: dict[str, pl.Expr] = {}
    problems: list[pl.Expr] = []
    for name, dtype in _expected_polars_schema(data_type).items():
        if name not in frame.columns:
            expressions[name] = pl.lit(None, dtype=dtype).alias(name)
            continue
        cast = pl.col(name).cast(dtype, strict=False)
        expressions[name] = cast.alias(name)
        if frame.schema[name] != dtype:
            problems.append(pl.when(pl.col(name).is_not_null() & cast.is_null()).then(pl.lit(f"unparseable {name}")))
    expressions[REJECT_REASON] = pl.coalesce([expressions[REJECT_REASON], *problems]).alias(REJECT_REASON)
    return frame.select(list(expressions.values()))


@dataclass
class _Origins:
    """Which raw file, and which row of it, each row of a batch came from (in the batch's row order).

    Rows per file are read from the Parquet footers only when a row is asked about: only quarantined
    rows are, and most batches have none."""

    paths: list[Path]
    output: Path
    rows: list[int] | None = None

    def source(self, batch_row: int) -> str:
        """``raw/<type>/symbol=<SYMBOL>/part.parquet#<row>``, the row counted from 0."""
        if self.rows is None:
            self.rows = [pq.read_metadata(path).num_rows for path in self.paths]
        for path, rows in zip(self.paths, self.rows, strict=True):
            if batch_row < rows:
                return f"{path.relative_to(self.output)}#{batch_row}"
            batch_row -= rows
        raise IndexError(f"row {batch_row} is past the batch's files")


def _read_batch(paths: list[Path], data_type: DataType, zone: RawZone,
                counts: LoadCounts) -> tuple[list[pl.DataFrame], _Origins]:
    """All files of a batch in one multi-threaded read when they are all well-formed files of ours;
    otherwise file by file, so that each bad one is found and moved aside."""
    output = zone.root.parent
    try:
        frame = pl.scan_parquet(paths, hive_partitioning=False).collect()
    except Exception:  # noqa: BLE001 - any failure sends us to the careful path, which names the file
        frame = None
    if frame is not None and frame.schema == _expected_polars_schema(data_type):
        return [frame], _Origins(paths, output)
    read = [(path, frame) for path in paths if (frame := _read_file(path, data_type, zone, counts)) is not None]
    return [frame for _, frame in read], _Origins([path for path, _ in read], output, [f.height for _, f in read])


def _read_file(path: Path, data_type: DataType, zone: RawZone, counts: LoadCounts) -> pl.DataFrame | None:
    try:
        table = pq.ParquetFile(path).read()
    except (OSError, pa.ArrowException) as exc:
        return _quarantine_file(path, f"not a readable Parquet file: {exc}", zone, counts)
    missing = [column for column in data_type.natural_key if column not in table.column_names]
    if missing:
        return _quarantine_file(path, f"not a {data_type.name} file: no column {', '.join(missing)}", zone, counts)
    table = table.replace_schema_metadata(None)
    if table.schema.equals(data_type.raw_schema):
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame
    return _normalise(table, data_type)


def _misfit(path: Path, data_type: DataType) -> str | None:
    """Why a raw file does not belong where it lies (another type's, another company's, a newer
    version's), or None. Files without our metadata (older, or foreign) are judged by their rows."""
    meta = read_meta(path)
    symbol = partition_symbol(path)
    if meta is None:
        if symbol is None:
            return None
        try:
            held = set(pq.read_table(path, columns=["symbol"]).column("symbol").to_pylist())
        except (OSError, KeyError, pa.ArrowException):
            return None  # the read proper says what is wrong with it
        others = sorted(str(value) for value in held - {symbol, None})
        return f"holds {', '.join(others)}, not {symbol}" if others else None
    version = meta.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        return (f"written by a newer nepse-etl (schema version {version}; this one reads up to {SCHEMA_VERSION}): "
                "upgrade nepse-etl to load it")
    if meta.get("type", data_type.name) != data_type.name:
        return f"a {meta['type']} file in the {data_type.name} zone"
    if symbol is not None and meta.get("symbol", symbol) != symbol:
        return f"holds {meta['symbol']}, not {symbol}"
    return None


def _belonging(paths: list[Path], data_type: DataType, zone: RawZone, counts: LoadCounts) -> list[Path]:
    kept = []
    for path in paths:
        reason = _misfit(path, data_type)
        if reason is None:
            kept.append(path)
        else:
            _quarantine_file(path, f"not this partition's file: {reason}", zone, counts)
    return kept


def _quarantine_file(path: Path, reason: str, zone: RawZone, counts: LoadCounts) -> None:
    target = zone.quarantine(path, reason)
    counts.bad_files.append(str(path))
    logger.warning(f"quarantined {path}: {reason} (moved to {target})")
    return None


def _batches(paths: list[Path], data_type: DataType) -> Iterator[list[Path]]:
    if not data_type.key_includes_symbol:
        yield paths  # the key spans companies: dedupe needs every file at once
        return
    for start in range(0, len(paths), FILES_PER_BATCH):
        yield paths[start:start + FILES_PER_BATCH]


def _split(frame: pl.DataFrame, data_type: DataType) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(rows that can be stored, deduplicated newest-first; rows that cannot; issues of keys the
    source sent twice in one answer with different values)."""
    checked = frame.with_columns(data_type.contract().alias(_REASON))
    bad = checked.filter(pl.col(_REASON).is_not_null())
    passed = checked.filter(pl.col(_REASON).is_null()).sort(FETCHED_AT, nulls_last=False, maintain_order=True)
    key = list(data_type.natural_key)
    good = (passed.unique(subset=key, keep="last", maintain_order=True)
            .sort(key))  # inserting in key order keeps SQLite's B-tree appends cheap
    conflicts = _conflicting_copies(passed, data_type) if good.height < passed.height else _no_issues()
    return good, bad, conflicts


def _no_issues() -> pl.DataFrame:
    return pl.DataFrame(schema=_ISSUE_SCHEMA)


def _conflicting_copies(passed: pl.DataFrame, data_type: DataType) -> pl.DataFrame:
    """Keys whose newest answer carried differing copies: the last copy is stored, the detail keeps
    the others (the key holds only one row)."""
    key = list(data_type.natural_key)
    fetched = pl.col(FETCHED_AT).fill_null("")
    repeated = passed.filter(passed.select(key).is_duplicated())
    latest = repeated.filter(fetched == fetched.max().over(key))
    repeated = latest.filter(pl.len().over(key) > 1)
    values = [column for column in data_type.columns if column not in key]
    issues = []
    for key_values, copies in repeated.group_by(key, maintain_order=True):
        records = copies.select(values).to_dicts()
        stored = records[-1]
        seen = [comparable(record.values()) for record in records]
        others = [record for index, (record, values) in enumerate(zip(records, seen, strict=True))
                  if values != seen[-1] and values not in seen[:index]]
        if others:
            detail = (f"{len(others) + 1} different copies in one answer; stored "
                      f"{json.dumps(stored, default=str)}; not stored: {json.dumps(others, default=str)}")
            issues.append((key_text(key_values), DUPLICATE_DIFFERS, detail))
    return pl.DataFrame(issues, schema=_ISSUE_SCHEMA, orient="row")


def _float_columns(data_type: DataType) -> list[str]:
    return [item.name for item in data_type.schema if pa.types.is_floating(item.type)]


def _without_non_finite(good: pl.DataFrame, keys: pl.Series,
                        data_type: DataType) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows with every NaN and infinity made NULL, and an issue for each such value. SQLite has no NaN (it
    would store one as NULL without a word) and the plausibility rules would compare it as a number."""
    columns = _float_columns(data_type)
    odd = {column: pl.col(column).is_nan() | pl.col(column).is_infinite() for column in columns}
    if not columns or good.is_empty() or not good.select(any_of(list(odd.values())).any()).item():
        return good, _no_issues()
    checks = [pl.when(check).then(values_text(column)).alias(not_finite_rule(column)) for column, check in odd.items()]
    wide = good.select(keys.alias("key"), *checks).filter(pl.any_horizontal(pl.exclude("key").is_not_null()))
    issues = wide.unpivot(index="key", variable_name="rule", value_name="detail").drop_nulls("detail")
    cleaned = good.with_columns(pl.when(check).then(None).otherwise(pl.col(column)).alias(column)
                                for column, check in odd.items())
    return cleaned, issues.select(list(_ISSUE_SCHEMA))


def _flag(good: pl.DataFrame, keys: pl.Series, data_type: DataType) -> pl.DataFrame:
    """(key, rule, detail) for every stored row and plausibility rule it breaks."""
    if not data_type.rules or good.is_empty():
        return _no_issues()
    odd = good.with_columns(keys.alias(_KEY)).filter(any_of([rule.breaks() for rule in data_type.rules]))
    checks = [pl.when(rule.breaks()).then(rule.detail()).alias(rule.name) for rule in data_type.rules]
    wide = odd.select(pl.col(_KEY).alias("key"), *checks)  # details only for the few odd rows
    return (wide.unpivot(index="key", variable_name="rule", value_name="detail")
            .drop_nulls("detail").select(list(_ISSUE_SCHEMA)))


# ---- writing


def _write_quarantine(connection: sqlite3.Connection, data_type: DataType, bad: pl.DataFrame,
                      origins: _Origins) -> None:
    if bad.is_empty():
        return
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows = []
    for record in bad.drop(FETCHED_AT).to_dicts():
        reason = record.pop(_REASON)
        source = origins.source(record.pop(_ROW))
        record.pop(REJECT_REASON, None)
        text = json.dumps(record, sort_keys=True, default=str)
        digest = hashlib.sha1(f"{reason}|{text}".encode()).hexdigest()
        rows.append((data_type.name, digest, record.get("symbol"), reason, text, source, now))
    connection.executemany("INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _upsert(connection: sqlite3.Connection, data_type: DataType, good: pl.DataFrame, counts: LoadCounts) -> None:
    if good.is_empty():
        return
    count_sql = f"SELECT count(*) FROM {data_type.table}"
    rows_before = connection.execute(count_sql).fetchone()[0]
    changes_before = connection.total_changes
    connection.executemany(upsert_sql(data_type), good.select(data_type.columns).iter_rows())
    changed = connection.total_changes - changes_before
    new = connection.execute(count_sql).fetchone()[0] - rows_before
    counts.new += new
    counts.updated += changed - new
    counts.unchanged += good.height - changed


def _record_flags(connection: sqlite3.Connection, data_type: DataType, keys: pl.Series, issues: pl.DataFrame,
                  counts: LoadCounts) -> None:
    counts.flagged += issues.get_column("key").n_unique()
    for rule, times in issues.group_by("rule").len().iter_rows():
        counts.flagged_by_rule[rule] = counts.flagged_by_rule.get(rule, 0) + times
    counts.issues_new += record_issues(connection, data_type.name, issues.iter_rows())
    rules = ([rule.name for rule in data_type.rules] + [DUPLICATE_DIFFERS]
             + [not_finite_rule(column) for column in _float_columns(data_type)])
    clear_resolved(connection, data_type.name, rules, keys, set(issues.select("key", "rule").iter_rows()))


def load_type(connection: sqlite3.Connection, data_type: DataType, zone: RawZone,
              paths: list[Path] | None = None) -> LoadCounts:
    """Load every raw file of one type in one transaction."""
    started = time.perf_counter()
    counts = LoadCounts()
    paths = _belonging(zone.files(data_type.name) if paths is None else paths, data_type, zone, counts)
    ensure_table(connection, data_type)
    ensure_quarantine_table(connection)
    ensure_issues_table(connection)
    connection.execute("BEGIN IMMEDIATE")
    try:
        forget_rows_now_flagged(connection, data_type)
        for batch in _batches(paths, data_type):
            bad_before = len(counts.bad_files)
            frames, origins = _read_batch(batch, data_type, zone, counts)
            counts.files += len(batch) - (len(counts.bad_files) - bad_before)
            if not frames:
                continue
            frame = pl.concat(frames, how="vertical_relaxed").with_row_index(_ROW)
            counts.rows_read += frame.height
            good, bad, conflicts = _split(frame, data_type)
            if data_type.before_upsert is not None and not good.is_empty():
                good = data_type.before_upsert(connection, good)
            counts.quarantined += bad.height
            _write_quarantine(connection, data_type, bad, origins)
            keys = good.select(key_expr(data_type.natural_key)).to_series()
            good, not_finite = _without_non_finite(good, keys, data_type)
            _upsert(connection, data_type, good, counts)
            issues = pl.concat([not_finite, _flag(good, keys, data_type), conflicts])
            _record_flags(connection, data_type, keys, issues, counts)
        connection.execute("COMMIT")
    except BaseException:
        _roll_back(connection)
        raise
    counts.seconds = time.perf_counter() - started
    return counts


def load_all(db_path: Path, zone: RawZone, data_types: list[DataType],
             into: dict[str, LoadCounts] | None = None, busy_timeout_s: float = 5.0) -> dict[str, LoadCounts]:
    """Load each type in turn; `into` receives each table's counts as soon as it is committed. A write lock
    another program holds is waited for `busy_timeout_s` seconds at most."""
    connection = open_database(db_path, busy_timeout_s)
    try:
        results: dict[str, LoadCounts] = {} if into is None else into
        for data_type in data_types:
            try:
                results[data_type.name] = load_type(connection, data_type, zone)
            except sqlite3.OperationalError as exc:
                raise _usable_error(exc, db_path) from None
            counts = results[data_type.name]
            logger.info(f"loaded {data_type.table}: {counts.new:,} new, {counts.updated:,} updated, "
                        f"{counts.unchanged:,} unchanged, {counts.flagged:,} flagged, "
                        f"{counts.quarantined:,} quarantined ({counts.seconds:.2f}s)")
        return results
    finally:
        connection.close()


