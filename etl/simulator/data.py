"""SimData: the whole synthetic NEPSE dataset for one seed, generated lazily per security."""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import random
from collections.abc import Callable

from etl.simulator import filings, indices
from etl.simulator.companies import (
    ACTIVE,
    DELISTED,
    EQUITY,
    REGULATORS,
    Security,
    generate_securities,
    trading_traits,
)
from etl.simulator.nepal_calendar import nepal_today
from etl.simulator.prices import simulate_prices

RecordBuilder = Callable[[int, Security, datetime.date], list[dict]]
PROMOTER_SHARE_SECTORS = frozenset({"Commercial Banks", "Development Banks", "Finance", "Microfinance",
                                    "Life Insurance", "Non Life Insurance", "Investment"})
# Four promoter shares trade in ten years of real prices (NIMBPO, RBCLPO, HIDCLP, SLBBLP: a bank, an insurer,
# an investment company, a microfinance) against 261 active equities in the real company list; none of them
# is in the company list. At least one is listed, so that a small simulator has one to serve.
PROMOTER_SHARES_PER_ACTIVE_EQUITY = 4 / 261
PROMOTER_SUFFIXES = ("PO", "P")


class SimData:
    def __init__(
        self,
        seed: int,
        n_companies: int = 600,
        today: datetime.date | None = None,
        history_days: int = 365,
    ) -> None:
        self.seed = seed
        self.today = today or nepal_today()
        self.history_start = self.today - datetime.timedelta(days=history_days)
        self._securities = generate_securities(seed, n_companies)
        self._by_id = {security.id: security for security in self._securities}
        self._companies = [security.company_json() for security in self._securities]
        self._promoters = promoter_shares(seed, self._securities)
        self._promoter_by_id = {security.id: security for security in self._promoters}
        self._security_list = [security_list_entry(security) for security in [*self._securities, *self._promoters]]
        self._prices: dict[int, list[dict]] = {}
        self._price_dates: dict[int, list[str]] = {}
        self._indices: dict[int, list[dict]] = {}
        self._index_dates: dict[int, list[str]] = {}
        self._reports: dict[int, list[dict]] = {}
        self._dividends: dict[int, list[dict]] = {}
        self._profiles: dict[int, dict] = {}

    def security(self, security_id: int) -> Security | None:
        return self._by_id.get(security_id)

    def companies(self) -> list[dict]:
        """The served `/api/nots/company/list` array."""
        return self._companies

    def securities(self, non_delisted: bool = True) -> list[dict]:
        """The served `/api/nots/security` array; includes promoter shares, as the real one does."""
        if not non_delisted:
            return self._security_list
        return [entry for entry in self._security_list if entry["activeStatus"] != DELISTED]

    def prices(self, security_id: int, start: datetime.date, end: datetime.date) -> list[dict]:
        """Served price rows of [start, end] (clipped to the served history), newest first."""
        return _newest_first(self._served_prices(security_id), self._price_dates[security_id], start, end)

    def served_prices(self, security_id: int) -> list[dict]:
        """The whole served price history of a security, newest first."""
        return self.prices(security_id, self.history_start, self.today)

    def index_list(self) -> list[dict]:
        """The served `/api/nots/index` array: the headline indices and every sector sub-index."""
        return [indices.index_list_entry(spec, REGULATORS) for spec in indices.CATALOGUE]

    def index_history(self, index_id: int, start: datetime.date, end: datetime.date) -> list[dict]:
        """Served history rows of an index in [start, end] (clipped to the served history), newest first."""
        if index_id not in self._indices:
            rows = indices.simulate_index(self.seed, index_id, self.history_start, self.today)
            self._indices[index_id] = rows
            self._index_dates[index_id] = [row["businessDate"] for row in rows]
        return _newest_first(self._indices[index_id], self._index_dates[index_id], start, end)

    def served_index_history(self, index_id: int) -> list[dict]:
        """The whole served history of an index, newest first."""
        return self.index_history(index_id, self.history_start, self.today)

    def reports(self, security_id: int) -> list[dict]:
        return self._cached(self._reports, security_id, filings.reports)

    def dividends(self, security_id: int) -> list[dict]:
        return self._cached(self._dividends, security_id, filings.dividends)

    def profile(self, security_id: int) -> dict | None:
        security = self._by_id.get(security_id)
        if security is None:
            return None
        if security_id not in self._profiles:
            self._profiles[security_id] = filings.profile(self.seed, security)
        return self._profiles[security_id]

    def _cached(self, cache: dict[int, list[dict]], security_id: int, build: RecordBuilder) -> list[dict]:
        """Records of a security, built on first use; [] for an unknown id."""
        security = self._by_id.get(security_id)
        if security is None:
            return []
        if security_id not in cache:
            cache[security_id] = build(self.seed, security, self.today)
        return cache[security_id]

    def _served_prices(self, security_id: int) -> list[dict]:
        """Oldest first; the per-security cache behind prices()."""
        if security_id not in self._prices:
            security = self._by_id.get(security_id) or self._promoter_by_id.get(security_id)
            rows = [] if security is None else simulate_prices(self.seed, security, self.history_start, self.today)
            self._prices[security_id] = rows
            self._price_dates[security_id] = [row["businessDate"] for row in rows]
        return self._prices[security_id]

    def promoter_shares(self) -> list[Security]:
        """The listed promoter shares: in the security list, not in the company list."""
        return self._promoters


def promoter_shares(seed: int, securities: list[Security]) -> list[Security]:
    rng = random.Random(f"{seed}:promoters")
    active_equities = [s for s in securities if s.instrument_type == EQUITY and s.status == ACTIVE]
    candidates = [s for s in active_equities if s.sector in PROMOTER_SHARE_SECTORS]
    wanted = min(len(candidates), max(1, round(len(active_equities) * PROMOTER_SHARES_PER_ACTIVE_EQUITY)))
    taken = {security.symbol.strip() for security in securities}
    next_id = max((security.id for security in securities), default=100) + rng.randint(50, 200)
    promoters: list[Security] = []
    for parent in rng.sample(candidates, len(candidates)):
        symbol = parent.symbol.strip() + rng.choice(PROMOTER_SUFFIXES)
        if len(promoters) == wanted:
            break
        if symbol in taken:
            continue
        taken.add(symbol)
        traits = trading_traits(random.Random(f"{seed}:traits:{next_id}"), EQUITY, parent.sector, ACTIVE)
        promoters.append(dataclasses.replace(parent, id=next_id, symbol=symbol, traits=traits,
                                             security_name=parent.security_name.strip() + " Promoter Share"))
        next_id += rng.randint(1, 4)
    return promoters


def _newest_first(rows: list[dict], dates: list[str], start: datetime.date, end: datetime.date) -> list[dict]:
    """The rows (oldest first, `dates` their business dates) of [start, end], newest first."""
    first = bisect.bisect_left(dates, start.isoformat())
    after_last = bisect.bisect_right(dates, end.isoformat())
    return rows[first:after_last][::-1]


def security_list_entry(security: Security) -> dict:
    return {
        "id": security.id,
        "symbol": security.symbol,
        "securityName": security.security_name,
        "name": security.company_name,
        "activeStatus": security.status,
    }
