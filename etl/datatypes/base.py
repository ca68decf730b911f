"""What a data type declares, and the small parsing helpers every type shares.

A data type module builds one `DataType`: what it iterates over (its `Scope`: each
company, each index, or one call), its endpoint and how to fetch it (paging or not),
how a response becomes rows, the Arrow schema of those rows in the raw zone, the
natural key, the SQLite table, the contract a row must meet to be stored at all (a key,
readable values) and the plausibility rules that flag a stored row that looks wrong.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import operator
import re
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from etl.paging import Paginator, SpringPaginator, StopBefore
from etl.payloads import BodyCheck

if TYPE_CHECKING:
    import sqlite3

    import polars as pl

    from etl.settings import Settings

# Columns every raw-zone file carries besides the type's own.
FETCHED_AT = "fetched_at"  # when we fetched the row (UTC, ISO 8601): newest wins on dedupe
REJECT_REASON = "reject_reason"  # set at parse time when a value could not be read

Row = dict[str, Any]


class Api(Protocol):
    """What a type's fetch needs of the HTTP client (`etl.client.NepseClient` is the real one)."""

    page_size: int
    max_pages: int

    async def get_json(self, path: str, params: dict[str, Any] | None = None,
                       validate: BodyCheck | None = None) -> Any: ...

    async def get_pages(self, path: str, params: dict[str, Any], paginator: Paginator,
                        convert: Callable[[list[Any]], Any] | None = None) -> list[Any]: ...


@dataclass(frozen=True)
class Unit:
    """One thing a type is fetched for: a company, an index, or the one call of a one-call type."""

    id: int
    key: str  # names its raw-zone partition (symbol=<key>) and labels it in progress lines
    name: str = ""


class Company(Unit):
    """A listed security: its id is NEPSE's security id, its key the symbol."""

    @property
    def security_id(self) -> int:
        return self.id

    @property
    def symbol(self) -> str:
        return self.key


class Index(Unit):
    """A NEPSE index: its id is NEPSE's index id (58 is the NEPSE index), its key the index code."""

    @property
    def code(self) -> str:
        return self.key


@dataclass(frozen=True)
class FetchWindow:
    since: date
    until: date


@dataclass(frozen=True)
class Listing:
    """The units of one scope for this run, and the listing's own rows when they are a type's data."""

    units: list[Unit]
    rows: list[Row] | None = None
    # Units only the types that take every security fetch (promoter shares, with --include-promoter).
    extras: list[Unit] = field(default_factory=list)


class ListingProblem(Exception):
    """A scope that cannot be listed, in words that say what to do."""


@dataclass(frozen=True)
class Scope:
    """What a data type iterates over. The parent lists each scope once per run (one call for
    companies or indices) and every type of that scope is then fetched unit by unit."""

    name: str  # "companies", "indices", "one call"
    list_name: str = ""  # what the listing call is called in messages: "company list"
    # Lists the units; None for a type fetched in one call by the parent (the company list).
    list_units: Callable[[Api, Settings], Awaitable[Listing]] | None = None
    # The type whose table the listing's rows go to (the company list fills `securities`).
    listing_type: DataType | None = None


ONE_CALL = Scope("one call")


@dataclass(frozen=True)
class Rule:
    """A plausibility rule: a row that breaks it is stored as published and listed in `data_issues`."""

    name: str  # the `rule` column of data_issues
    why: str  # one line for the docs: what it catches
    breaks: Callable[[], pl.Expr]  # true where the row breaks the rule
    detail: Callable[[], pl.Expr]  # the values that break it, as text


@dataclass(frozen=True)
class DataType:
    name: str
    table: str
    schema: pa.Schema  # the type's own columns, in SQLite column order
    natural_key: tuple[str, ...]
    scope: Scope
    fetch: Callable[[Api, Any, FetchWindow], Awaitable[Any]]  # (client, unit, window)
    parse: Callable[[Any, Any], list[Row]]  # (response, unit)
    # Polars expression giving the reason a row cannot be stored (no key, unreadable value), or null.
    contract: Callable[[], pl.Expr]
    rules: tuple[Rule, ...] = ()  # what a stored row is checked for: flagged, never dropped
    indexes: tuple[str, ...] = ()  # CREATE INDEX statements beside the natural key
    # Runs in the load's transaction on a batch's good rows, before they are upserted.
    before_upsert: Callable[[sqlite3.Connection, pl.DataFrame], pl.DataFrame] | None = None
    # An incremental type's date column: only the days after those already saved are fetched.
    date_column: str | None = None
    key_includes_symbol: bool = True  # the key separates partitions, so each can be loaded on its own
    # With --include-promoter, also every listed security the company list lacks (promoter shares).
    every_security: bool = False
    calls_per_company: int = 1  # for --dry-run estimates
    # Optional fast path: the records as the type's own columns in one step, or None when some value needs
    # `parse` (which reads row by row and says what is wrong with a row).
    parse_columns: Callable[[Any, Company], pa.Table | None] | None = None
    noun: str = "record"  # what one row is, for "what changed" lines: "1 new price day"
    # What the new rows of one unit were, when a count of them says too little ("new dividend 2082/83").
    describe_new: Callable[[list[Row]], str] | None = None

    @property
    def incremental(self) -> bool:
        return self.date_column is not None

    @property
    def raw_schema(self) -> pa.Schema:
        return self.schema.append(pa.field(FETCHED_AT, pa.string())).append(pa.field(REJECT_REASON, pa.string()))

    @property
    def columns(self) -> list[str]:
        return self.schema.names

    def sqlite_columns(self) -> list[tuple[str, str]]:
        return [(item.name, sqlite_type(item.type)) for item in self.schema]

    def to_table(self, records: Any, company: Company, fetched_at: str) -> pa.Table:
        """The records as a raw-zone table: columns in one step when they are clean, else row by row."""
        if isinstance(records, Pages):
            return pa.concat_tables([self.to_table(page, company, fetched_at) for page in records])
        table = records if isinstance(records, pa.Table) else self.own_columns(records, company)
        if table is None:
            return rows_to_table(self.parse(records, company), self, fetched_at)
        rows = table.num_rows
        return table.append_column(FETCHED_AT, pa.repeat(pa.scalar(fetched_at), rows)).append_column(
            REJECT_REASON, pa.nulls(rows, pa.string()))

    def own_columns(self, records: Any, company: Company) -> pa.Table | None:
        return self.parse_columns(records, company) if self.parse_columns is not None else None

    def page_converter(self, company: Company) -> Callable[[list[Any]], Any]:
        """For `NepseClient.get_pages`: each page as the type's columns when it is clean, else kept as it came."""

        def convert(records: list[Any]) -> Any:
            table = self.own_columns(records, company)
            return records if table is None else table

        return convert


class Pages(list):  # type: ignore[type-arg]
    """A paged type's records, one item per page: the page's table, or its records for the row parser."""


def rows_to_table(rows: list[Row], data_type: DataType, fetched_at: str) -> pa.Table:
    schema = data_type.raw_schema
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    columns[FETCHED_AT] = [fetched_at] * len(rows)
    columns[REJECT_REASON] = [row.get(REJECT_REASON) for row in rows]
    return pa.Table.from_pydict(columns, schema=schema)


def sqlite_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type):
        return "INTEGER"
    if pa.types.is_floating(arrow_type):
        return "REAL"
    return "TEXT"


async def fetch_daily_history(client: Api, path: str, window: FetchWindow,
                              convert: Callable[[list[Any]], Any] | None = None) -> list[Any]:
    """Every row of a Spring-paged daily history (a security's prices, an index) in the window, newest first;
    with `convert` (a type's page converter), its Pages instead. Paging stops at the window's first day even
    where the server ignores startDate."""
    since = window.since.isoformat()
    paginator = StopBefore(SpringPaginator(client.page_size, client.max_pages), "businessDate", since)
    params = {"startDate": since, "endDate": window.until.isoformat()}
    pages = await client.get_pages(path, params, paginator, convert=convert)
    return pages if convert is None else Pages(pages)


def describe_by(noun: str, label: Callable[[Row], str | None]) -> Callable[[list[Row]], str]:
    """A `describe_new` naming what is new: 'new dividend 2082/83', '2 new reports (2081/82 Q4, 2082/83 Q1)'."""

    def describe(rows: list[Row]) -> str:
        labels = sorted({text for row in rows if (text := label(row))})
        if len(rows) == 1:
            return f"new {noun} {labels[0]}" if labels else f"new {noun}"
        shown = ", ".join(labels[:3]) + (", ..." if len(labels) > 3 else "")
        return f"{len(rows):,} new {noun}s" + (f" ({shown})" if shown else "")

    return describe


# ---- parsing helpers shared by the type modules

_SPACES = re.compile(r"\s+")


class ParseProblem(ValueError):
    """A value that cannot be read: the row is kept and quarantined with this reason.

    Only what the server sent can cause one: the parsers check every shape they rely on, so that any
    other exception out of a parser is a bug of ours and stops the run loudly (etl/extract.py)."""


INT64_MAX = 2**63 - 1
RECORD_IN_REASON = 300  # characters of the offending record quoted in a parse problem's reason


def clean_text(value: Any) -> str | None:
    """Trim and fold runs of whitespace (NEPSE strings carry tabs and double spaces)."""
    if value is None:
        return None
    text = _SPACES.sub(" ", str(value)).strip()
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, sent as a \ud800 escape: not storable as UTF-8
            raise ParseProblem(f"text {_printable(repr(text))} is not valid Unicode") from None
    return text or None


def to_float(value: Any, field_name: str) -> float | None:
    """Numbers arrive as numbers or strings (sometimes with thousands separators). NaN and the infinities
    (JSON's NaN/Infinity literals, or such a string) are returned as they came: the row has a key and may
    have other good values, so the load stores it with this value NULL and flags it (`<column>_not_finite`)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ParseProblem(f"{field_name} {value!r} is not a number")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(str(value).replace(",", "").strip().removesuffix("%"))
        except ValueError:
            raise ParseProblem(f"{field_name} {value!r} is not a number") from None
    return number


def comparable(values: Iterable[Any]) -> tuple:
    """The values, each NaN (which equals nothing, itself included) replaced by a marker that equals itself: two
    answers that both carry a NaN in a field agree on it."""
    return tuple(_NAN if isinstance(value, float) and math.isnan(value) else value for value in values)


_NAN = ("NaN",)


def to_int(value: Any, field_name: str) -> int | None:
    number = to_float(value, field_name)
    if number is None:
        return None
    if not math.isfinite(number):  # an integer column cannot hold it, and a NULL would not say why
        raise ParseProblem(f"{field_name} {value!r} is not a finite number")
    if not number.is_integer():
        raise ParseProblem(f"{field_name} {value!r} is not a whole number")
    if abs(number) > INT64_MAX:
        raise ParseProblem(f"{field_name} {value!r} is too large for a 64-bit integer")
    return int(number)


def to_iso_date(value: Any, field_name: str) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise ParseProblem(f"{field_name} {value!r} is not a date") from None


_FISCAL_YEAR = re.compile(r"^\s*(\d{4})\s*[/-]\s*(\d{2}|\d{4})\s*$")


def fiscal_year(value: Any) -> str | None:
    """Bikram Sambat fiscal year in the reports' form '2080/81' ('2079-2080' and '2080/2081' too)."""
    text = clean_text(value)
    if text is None:
        return None
    match = _FISCAL_YEAR.match(text)
    if not match:
        return text
    return f"{match.group(1)}/{match.group(2)[-2:]}"


def as_object(value: Any, field_name: str) -> dict[str, Any]:
    """A nested JSON object; missing, null or empty is {}, anything else not an object is a ParseProblem."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ParseProblem(f"{field_name} is a {type(value).__name__}, not an object")
    return value


def as_array(value: Any, field_name: str) -> list[Any]:
    """A nested JSON array; missing, null or empty is [], anything else not an array is a ParseProblem."""
    if not value:
        return []
    if not isinstance(value, list):
        raise ParseProblem(f"{field_name} is a {type(value).__name__}, not an array")
    return value


def quoted(record: Any) -> str:
    """The record as the server sent it, for a reason (shortened past RECORD_IN_REASON characters)."""
    text = _printable(json.dumps(record, sort_keys=True, ensure_ascii=False, default=str))
    return text if len(text) <= RECORD_IN_REASON else text[:RECORD_IN_REASON - 1] + "…"


def _printable(text: str) -> str:
    """The text with anything UTF-8 cannot hold (lone surrogates) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def nested(record: Any, *path: str) -> Any:
    """record[path[0]][path[1]]..., or None where any level is missing or null."""
    for key in path:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


def parse_each(records: Iterable[Any], parse_one: Callable[[dict], Row | None], blank: Row) -> list[Row]:
    """Parse every record; one that cannot be read becomes a row carrying its reason, which quotes it."""
    rows: list[Row] = []
    for record in records:
        if not isinstance(record, dict):
            rows.append({**blank, REJECT_REASON: f"record is a {type(record).__name__}, not an object: "
                                                 f"{quoted(record)}"})
            continue
        try:
            row = parse_one(record)
        except ParseProblem as problem:
            rows.append({**blank, REJECT_REASON: f"{problem} in record {quoted(record)}"})
            continue
        if row is not None:
            rows.append(row)
    return rows


# ---- the columnar fast path: whole columns checked with Arrow compute instead of a function per row.
# pyarrow.compute is imported where it is used: it costs ~10 MB, and only prices' and indices' processes need it.
# Each returns None when a value is anything the row parser would treat specially (a string number, a
# bool, a NaN trade count, a date with a time or padding it has to clean): the page then goes through `parse`, which
# keeps every per-row check and message.


# Arrow's type inference tries `import dateutil.relativedelta` on every call; without dateutil that failed
# import searches sys.path each time (about half the cost of a page). Remember the absence once.
if importlib.util.find_spec("dateutil") is None:
    for _absent in ("dateutil", "dateutil.relativedelta"):
        sys.modules.setdefault(_absent, None)  # type: ignore[arg-type]


def source_columns(records: Any, keys: Iterable[str]) -> dict[str, pa.Array] | None:
    """The given keys of a list of JSON objects as Arrow arrays, each column's type inferred by Arrow."""
    if not isinstance(records, list) or not records:
        return None
    keys = list(keys)
    try:
        # One pass in C over the records (itemgetter, then zip to columns) rather than a loop per key; a record
        # that lacks a key (KeyError) or is not an object (TypeError, AttributeError) takes the slower way.
        rows = list(map(operator.itemgetter(*keys), records))
        columns = dict(zip(keys, zip(*rows, strict=True), strict=True)) if len(keys) > 1 else {keys[0]: rows}
    except (KeyError, TypeError, AttributeError):
        if not all(isinstance(record, dict) for record in records):
            return None
        columns = {key: [record.get(key) for record in records] for key in keys}
    arrays = {}
    try:
        for key, column in columns.items():
            if bool in set(map(type, column)):
                return None  # Arrow would read True as 1.0
            arrays[key] = pa.array(column)
    except (pa.ArrowException, TypeError, AttributeError, OverflowError, ValueError):
        return None  # a column of mixed kinds
    return arrays


def float_column(array: pa.Array) -> pa.Array | None:
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), pa.float64())
    if pa.types.is_floating(array.type):
        return array.cast(pa.float64())  # NaN and infinities kept, as `to_float` keeps them
    if not pa.types.is_integer(array.type):
        return None
    try:
        return array.cast(pa.float64())
    except pa.ArrowException:
        return None


def int_column(array: pa.Array) -> pa.Array | None:
    import pyarrow.compute as pc

    if pa.types.is_null(array.type) or pa.types.is_integer(array.type):
        return array.cast(pa.int64())
    numbers = float_column(array)
    # a NaN or an infinity (is_finite false; null for a null) is no integer: the row parser says so
    if numbers is None or pc.is_finite(numbers).false_count or pc.any(pc.not_equal(pc.floor(numbers), numbers)).as_py():
        return None
    return numbers.cast(pa.int64())


_ISO_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def iso_date_column(array: pa.Array) -> pa.Array | None:
    """Plain 'YYYY-MM-DD' strings that are real days; anything else goes to the row parser."""
    import pyarrow.compute as pc

    if pa.types.is_null(array.type):
        return pa.nulls(len(array), pa.string())
    if not pa.types.is_string(array.type) or not pc.all(pc.match_substring_regex(array, _ISO_DAY)).as_py():
        return None
    try:
        array.cast(pa.date32())  # a real calendar day (strptime would roll 02-30 over into March)
    except pa.ArrowException:
        return None
    return array


def daily_history_table(records: Any, trades_key: str, floats: dict[str, str], constants: dict[str, pa.Scalar],
                        schema: pa.Schema) -> pa.Table | None:
    """A clean page of a daily history (prices, indices) as a table, a column at a time: `businessDate`, the
    trade count under `trades_key`, the float columns named by `floats` (column: source key), and `constants`
    repeated on every row. None when some value needs the row parser's checks."""
    source = source_columns(records, ["businessDate", trades_key, *floats.values()])
    if source is None:
        return None
    columns = {"business_date": iso_date_column(source["businessDate"]), "trades": int_column(source[trades_key])}
    columns.update((name, float_column(source[key])) for name, key in floats.items())
    if any(column is None for column in columns.values()):
        return None
    columns.update((name, pa.repeat(value, len(records))) for name, value in constants.items())
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


# Contract checks build Polars expressions, which only the load stage evaluates: polars is imported
# there, so that the extract processes (one per type) never load it.


def required(*columns: str) -> list[pl.Expr]:
    """Each column must be present."""
    import polars as pl

    return [pl.when(pl.col(column).is_null()).then(pl.lit(f"no {column}")) for column in columns]


def values_text(*columns: str) -> pl.Expr:
    """'high 99.0, low 100.0': the values a rule looked at, as text."""
    import polars as pl

    template = ", ".join(f"{column} {{}}" for column in columns)
    return pl.format(template, *[pl.col(column).cast(pl.String).fill_null("null") for column in columns])


def any_of(checks: list[pl.Expr]) -> pl.Expr:
    """True where any check is true (a null check counts as false)."""
    return functools.reduce(operator.or_, [check.fill_null(False) for check in checks])


def negative(name: str, *columns: str, why: str = "") -> Rule:
    """No column may be below zero."""

    def breaks() -> pl.Expr:
        import polars as pl

        return any_of([pl.col(column) < 0 for column in columns])

    return Rule(name, why or f"{', '.join(columns)} below zero", breaks, lambda: values_text(*columns))


def missing(name: str, column: str, *shown: str, why: str = "") -> Rule:
    """`column` must have a value; the flag shows it beside the `shown` columns."""

    def breaks() -> pl.Expr:
        import polars as pl

        return pl.col(column).is_null()

    return Rule(name, why or f"no {column}", breaks, lambda: values_text(column, *shown))


def below(name: str, smaller: str, larger: str, why: str = "") -> Rule:
    """`smaller` must not exceed `larger` (e.g. low <= high)."""

    def breaks() -> pl.Expr:
        import polars as pl

        return (pl.col(larger) < pl.col(smaller)).fill_null(False)

    return Rule(name, why or f"{larger} below {smaller}", breaks, lambda: values_text(larger, smaller))


def outside(name: str, value: str, low: str, high: str, why: str = "") -> Rule:
    """`value` must lie in [low, high] (only checked where low <= high, else that rule says it)."""

    def breaks() -> pl.Expr:
        import polars as pl

        ordered = pl.col(low) <= pl.col(high)
        return (ordered & ((pl.col(value) < pl.col(low)) | (pl.col(value) > pl.col(high)))).fill_null(False)

    return Rule(name, why or f"{value} outside [{low}, {high}]", breaks, lambda: values_text(value, low, high))


def first_reason(checks: list[pl.Expr]) -> pl.Expr:
    """The first failing check's reason, after any reason recorded at parse time."""
    import polars as pl

    return pl.coalesce([pl.col(REJECT_REASON), *checks])
