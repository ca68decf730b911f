"""The company list: fetched once per run by the parent (a one-call type), and the `companies`
scope it defines: the units every per-company type iterates over.

With --include-promoter the parent also reads NEPSE's security list, which carries listed
securities the company list lacks (promoter shares first of all); those are added to the
`securities` table (marked `source_list` 'security') and to the units of the types that take
every security (prices) only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from loguru import logger

from etl import api
from etl.datatypes.base import (
    ONE_CALL,
    Api,
    Company,
    DataType,
    FetchWindow,
    Listing,
    ListingProblem,
    Row,
    Rule,
    Scope,
    clean_text,
    first_reason,
    parse_each,
    required,
    to_int,
)
from etl.failures import FetchError
from etl.payloads import check_json_list
from etl.settings import ConfigError, Settings

if TYPE_CHECKING:
    import sqlite3

    import polars as pl

ACTIVE = "A"

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
    ("source_list", pa.string()),  # which list the row came from: 'company' or 'security'
    # Set by us, not the server: another active id claims this symbol and is the one fetched.
    ("superseded_by", pa.int64()),
])

COMPANY_LIST, SECURITY_LIST = "company", "security"


async def fetch(client: Api, company: Company | None = None, window: FetchWindow | None = None) -> Any:
    return await client.get_json(api.COMPANY_LIST_PATH, validate=check_json_list)


async def fetch_security_list(client: Api) -> Any:
    return await client.get_json(api.SECURITY_LIST_PATH, api.SECURITY_LIST_PARAMS, validate=check_json_list)


def _symbol(record: dict) -> str | None:
    symbol = clean_text(record.get("symbol"))
    return symbol.upper() if symbol else None


def parse(records: Any, company: Company | None = None) -> list[Row]:
    def parse_one(record: dict) -> Row:
        return {
            "security_id": to_int(record.get("id"), "id"),
            "symbol": _symbol(record),
            "company_name": clean_text(record.get("companyName")),
            "security_name": clean_text(record.get("securityName")),
            "status": clean_text(record.get("status")),
            "instrument_type": clean_text(record.get("instrumentType")),
            "sector": clean_text(record.get("sectorName")),
            "email": clean_text(record.get("companyEmail")),
            "website": clean_text(record.get("website")),
            "regulatory_body": clean_text(record.get("regulatoryBody")),
            "source_list": COMPANY_LIST,
        }

    rows = parse_each(records, parse_one, {"source_list": COMPANY_LIST})
    mark_superseded(rows)
    return rows


def parse_security_list(records: Any, company_rows: list[Row]) -> list[Row]:
    """Rows of the security list that the company list lacks (by id and by symbol)."""
    known_ids = {row.get("security_id") for row in company_rows}
    known_symbols = {row.get("symbol") for row in company_rows}

    def parse_one(record: dict) -> Row | None:
        row = {
            "security_id": to_int(record.get("id"), "id"),
            "symbol": _symbol(record),
            "company_name": clean_text(record.get("name")),
            "security_name": clean_text(record.get("securityName")),
            "status": clean_text(record.get("activeStatus")),
            "source_list": SECURITY_LIST,
        }
        return None if row["security_id"] in known_ids or row["symbol"] in known_symbols else row

    return parse_each(records, parse_one, {"source_list": SECURITY_LIST})


def contract() -> pl.Expr:
    return first_reason(required("security_id", "symbol"))


# ---- one symbol, one active security
#
# Symbols are reused after mergers and relistings, so the security id is the identity: every id
# is kept, and a symbol is unique only among the active securities we follow. When the list marks
# two ids active under one symbol (parsing folds case, so case-only twins meet here too), the most
# recent listing keeps it; NEPSE hands out ids in listing order, so that is the highest id.


@dataclass(frozen=True)
class SymbolConflict:
    symbol: str
    chosen: int
    others: tuple[int, ...]

    def describe(self) -> str:
        ids = sorted([*self.others, self.chosen])
        return (f"symbol {self.symbol} is claimed by active security ids {', '.join(map(str, ids[:-1]))} and "
                f"{ids[-1]}: fetching id {self.chosen}, the most recent listing")


def symbol_conflicts(rows: list[Row]) -> list[SymbolConflict]:
    claims: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        if row.get("status") == ACTIVE and row.get("symbol") and row.get("security_id") is not None:
            claims[row["symbol"].upper()].append(row["security_id"])
    return [SymbolConflict(symbol, max(ids), tuple(sorted(set(ids) - {max(ids)})))
            for symbol, ids in claims.items() if len(set(ids)) > 1]


def mark_superseded(rows: list[Row]) -> list[SymbolConflict]:
    conflicts = symbol_conflicts(rows)
    losers = {loser: conflict.chosen for conflict in conflicts for loser in conflict.others}
    for row in rows:
        row["superseded_by"] = losers.get(row.get("security_id"))
    return conflicts


def settle_symbols(connection: sqlite3.Connection, frame: pl.DataFrame) -> pl.DataFrame:
    """Before the upsert: conflicts within the list (a file from an older version has no
    superseded_by), and an active holder in the table that this list no longer names: the newer
    list wins, the old id stays, superseded."""
    import polars as pl

    rows = frame.to_dicts()
    mark_superseded(rows)
    connection.executemany(
        "UPDATE securities SET superseded_by = ? WHERE symbol = ? AND status = 'A' AND superseded_by IS NULL "
        "AND security_id <> ?",
        [(row["security_id"], row["symbol"], row["security_id"]) for row in rows
         if row.get("status") == ACTIVE and row["superseded_by"] is None])
    return pl.DataFrame(rows, schema=frame.schema)


def _claimed_by_another() -> pl.Expr:
    import polars as pl

    return (pl.col("status") == ACTIVE) & pl.col("superseded_by").is_not_null()


def _claim_detail() -> pl.Expr:
    import polars as pl

    return pl.format("symbol {} is also claimed by active security id {}, the most recent listing, which is the "
                     "one fetched", pl.col("symbol"), pl.col("superseded_by"))


RULES = (
    Rule("symbol_claimed_twice", "another active security id claims the same symbol (or the same symbol up to "
         "case); the most recent listing is fetched, this one is not", _claimed_by_another, _claim_detail),
)


SECURITIES = DataType(
    name="securities",
    table="securities",
    schema=SCHEMA,
    natural_key=("security_id",),
    scope=ONE_CALL,
    indexes=("CREATE UNIQUE INDEX IF NOT EXISTS securities_active_symbol ON securities (symbol) "
             "WHERE status = 'A' AND superseded_by IS NULL",),
    before_upsert=settle_symbols,
    rules=RULES,
    fetch=fetch,
    parse=parse,
    contract=contract,
    key_includes_symbol=False,
)


def active_companies(rows: list[Row]) -> list[Company]:
    """The default universe: every active company we follow (see above), in the list's order."""
    seen: set[str] = set()
    companies: list[Company] = []
    for row in rows:
        symbol = row.get("symbol")
        if (row.get("status") != ACTIVE or not symbol or row.get("security_id") is None
                or row.get("superseded_by") is not None or symbol in seen):
            continue
        seen.add(symbol)
        companies.append(Company(row["security_id"], symbol, row.get("company_name") or ""))
    return companies


def select_universe(active: list[Company], all_rows: list[Row], settings: Settings,
                    elsewhere: set[str] | None = None) -> list[Company]:
    """The companies this run fetches: --symbols (inactive ones too, with a warning), then --limit;
    `elsewhere`: symbols asked for that only the security list has."""
    universe = active
    if settings.symbols:
        wanted = [symbol for symbol in settings.symbols if symbol not in (elsewhere or set())]
        by_symbol = {company.symbol: company for company in active}
        listed = {row.get("symbol") for row in all_rows}
        unknown = [symbol for symbol in wanted if symbol not in listed]
        if unknown:
            raise ConfigError(f"unknown symbol {', '.join(unknown)}: not in NEPSE's company list; check the "
                              "spelling (symbols are matched without surrounding spaces); promoter shares "
                              "need --include-promoter")
        inactive = [symbol for symbol in wanted if symbol not in by_symbol]
        if inactive:
            logger.warning(f"{', '.join(inactive)} not active (delisted or suspended); fetching anyway")
            rows_by_symbol = {row["symbol"]: row for row in all_rows if row.get("symbol")}
            for symbol in inactive:
                row = rows_by_symbol[symbol]
                by_symbol[symbol] = Company(row["security_id"], symbol, row.get("company_name") or "")
        universe = [by_symbol[symbol] for symbol in wanted]
    if settings.limit is not None:
        universe = universe[: settings.limit]
    return universe


async def _securities_lacking(client: Api, settings: Settings, company_rows: list[Row]) -> list[Row]:
    """With --include-promoter, the security list's rows the company list lacks."""
    if not settings.include_promoter:
        return []
    try:
        return parse_security_list(await fetch_security_list(client), company_rows)
    except FetchError as error:
        raise ListingProblem(f"cannot get NEPSE's security list (for --include-promoter) from "
                             f"{settings.base_url}: {error.describe()}. Run without --include-promoter, or "
                             "try again later") from None


async def list_companies(client: Api, settings: Settings) -> Listing:
    """Every type's companies, and with --include-promoter the listed securities the company list lacks
    (extras: only types that take every security fetch them)."""
    rows = parse(await fetch(client))
    if not rows:  # before the saved list is replaced: an empty answer says nothing about the listings
        raise ListingProblem(f"the company list from {settings.base_url} is empty: nothing to fetch (the list "
                             "saved before is kept). Check --base-url; if it is NEPSE's, try again later")
    for conflict in symbol_conflicts(rows):
        logger.warning(conflict.describe())
    extra_rows = await _securities_lacking(client, settings, rows)
    extras = [company for company in active_companies(extra_rows)
              if not settings.symbols or company.symbol in settings.symbols][: settings.limit]
    if extras:
        logger.info(f"--include-promoter: {len(extras):,} listed securities the company list lacks "
                    f"(e.g. {', '.join(company.symbol for company in extras[:3])}) added to the price backfill")
    universe = select_universe(active_companies(rows), rows, settings, {company.symbol for company in extras})
    return Listing(universe, rows + extra_rows, extras)


COMPANIES = Scope("companies", "company list", list_companies, listing_type=SECURITIES)
