"""Baselines for scripts/bench.py, and the row keys both sides are counted with.

- `run_baseline(..., workers=5, pause_s=0.2)` is the seed's design reproduced faithfully: the data
  types one after another; for each a ThreadPoolExecutor(5) over the companies; each task makes one
  blocking urllib request and then sleeps 0.2 s; any error is logged and the company skipped (no
  retry); prices are asked as `size=500`, page 0 only (the seed did not page).
- `run_baseline(..., workers=1, pause_s=0.0)` is a plain sequential loop over the same requests.

Both authenticate the real way (`/api/authenticate/prove`, the token cleaned with `etl.api.access_token`,
`Authorization: Salter <token>`, browser headers), re-proving when the token is older than 45 s.
Rows are not stored anywhere: each response is reduced to the set of natural keys it carries, which is
what "rows lost" is counted on (the same key functions count the rows the simulator serves).
"""

from __future__ import annotations

import datetime
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from etl import api
from etl.simulator import SimData

TYPE_NAMES: tuple[str, ...] = ("prices", "reports", "dividends", "profiles")
SEED_PAGE_SIZE = 500
TIMEOUT_S = 30.0

Key = tuple[Hashable, ...]
Window = tuple[datetime.date, datetime.date]

# No proxy, whatever the environment says: the benchmark only ever talks to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---- row keys (shared by the expected rows and the baselines' collected rows)


def normalise_symbol(symbol: Any) -> str:
    return " ".join(str(symbol or "").split()).upper()


def active_companies(company_list: Iterable[dict]) -> list[tuple[int, str]]:
    """(security id, symbol) of every active company, each symbol once, in list order (as the CLI picks)."""
    seen: set[str] = set()
    companies: list[tuple[int, str]] = []
    for record in company_list:
        symbol = normalise_symbol(record.get("symbol"))
        if record.get("status") != "A" or not symbol or symbol in seen:
            continue
        seen.add(symbol)
        companies.append((int(record["id"]), symbol))
    return companies


def _price_keys(security_id: int, records: list[dict]) -> set[Key]:
    return {(security_id, record["businessDate"]) for record in records}


def _report_keys(security_id: int, records: list[dict]) -> set[Key]:
    keys: set[Key] = set()
    for record in records:
        report = record.get("fiscalReport")
        if isinstance(report, dict):
            quarter = (report.get("quarterMaster") or {}).get("id")
            keys.add((security_id, (report.get("financialYear") or {}).get("id"), quarter))
    return keys


def _dividend_keys(security_id: int, records: list[dict]) -> set[Key]:
    return {(record["id"],) for record in records}


def _profile_keys(security_id: int, records: list[dict]) -> set[Key]:
    return {(security_id,) for record in records if isinstance(record, dict)}


ROW_KEYS: dict[str, Callable[[int, list[dict]], set[Key]]] = {
    "prices": _price_keys,
    "reports": _report_keys,
    "dividends": _dividend_keys,
    "profiles": _profile_keys,
}


def expected_keys(seed: int, n_companies: int, window: Window) -> dict[str, set[Key]]:
    """Every row the simulator serves for the active companies in the CLI's price window."""
    data = SimData(seed, n_companies)
    since, until = window
    served: dict[str, Callable[[int], list[dict]]] = {
        "prices": lambda security_id: data.prices(security_id, since, until),
        "reports": data.reports,
        "dividends": data.dividends,
        "profiles": lambda security_id: [data.profile(security_id)],
    }
    expected: dict[str, set[Key]] = {name: set() for name in TYPE_NAMES}
    for security_id, _symbol in active_companies(data.companies()):
        for name in TYPE_NAMES:
            expected[name] |= ROW_KEYS[name](security_id, served[name](security_id))
    return expected


# ---- the seed's HTTP client: blocking urllib, one shared token


class SeedSession:
    """Blocking JSON GETs with NEPSE's auth; thread-safe; re-proves a token older than 45 s."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = api.browser_headers(self.base_url)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_time = 0.0
        self.requests = 0

    def _get(self, path: str, params: dict[str, Any] | None, headers: dict[str, str]) -> Any:
        url = self.base_url + path + ("?" + urlencode(params) if params else "")
        with self._lock:
            self.requests += 1
        request = urllib.request.Request(url, headers=headers)
        with _OPENER.open(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read())

    def token(self) -> str:
        with self._lock:
            stale = time.monotonic() - self._token_time >= api.TOKEN_REFRESH_AFTER_S
            needs_prove = self._token is None or stale
        if needs_prove:
            body = self._get(api.PROVE_PATH, None, self.headers)
            with self._lock:
                self._token = api.access_token(body)
                self._token_time = time.monotonic()
        assert self._token is not None
        return self._token

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._get(path, params, {**self.headers, **api.auth_header(self.token())})


# ---- the requests of one company and type, as the seed made them


def _request_for(type_name: str, security_id: int, window: Window) -> tuple[str, dict[str, Any] | None]:
    if type_name == "prices":
        since, until = window
        params = {"size": SEED_PAGE_SIZE, "startDate": since.isoformat(), "endDate": until.isoformat()}
        return api.PRICE_HISTORY_PATH.format(id=security_id), params
    paths = {"reports": api.REPORTS_PATH, "dividends": api.DIVIDENDS_PATH, "profiles": api.PROFILE_PATH}
    return paths[type_name].format(id=security_id), None


def _records_of(type_name: str, body: Any) -> list[dict]:
    if type_name == "prices":
        return list(body["content"])
    return [body] if type_name == "profiles" else list(body)


@dataclass
class BaselineResult:
    name: str
    wall_s: float = 0.0
    requests: int = 0
    companies: int = 0
    failures: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    keys: dict[str, set[Key]] = field(default_factory=dict)

    def record_failure(self, error: BaseException) -> None:
        self.failures += 1
        reason = type(error).__name__
        self.failure_reasons[reason] = self.failure_reasons.get(reason, 0) + 1


def _fetch_keys(session: SeedSession, type_name: str, security_id: int, window: Window,
                pause_s: float) -> set[Key] | BaseException:
    """One company's keys, or the error the seed would have logged and skipped."""
    try:
        path, params = _request_for(type_name, security_id, window)
        return ROW_KEYS[type_name](security_id, _records_of(type_name, session.get_json(path, params)))
    except Exception as error:  # the seed's `except Exception: log; continue`
        return error
    finally:
        if pause_s > 0:
            time.sleep(pause_s)


def run_baseline(name: str, base_url: str, window: Window, workers: int, pause_s: float) -> BaselineResult:
    """Company list, then each type in turn over every active company; never retries."""
    started = time.monotonic()
    session = SeedSession(base_url)
    result = BaselineResult(name)
    companies = active_companies(session.get_json(api.COMPANY_LIST_PATH))
    result.companies = len(companies)
    for type_name in TYPE_NAMES:
        collected: set[Key] = set()

        def task(company: tuple[int, str], type_name: str = type_name) -> set[Key] | BaseException:
            return _fetch_keys(session, type_name, company[0], window, pause_s)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = pool.map(task, companies) if workers > 1 else map(task, companies)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    result.record_failure(outcome)
                else:
                    collected |= outcome
        result.keys[type_name] = collected
    result.wall_s = time.monotonic() - started
    result.requests = session.requests
    return result


def run_seed_design(base_url: str, window: Window) -> BaselineResult:
    return run_baseline("seed design", base_url, window, workers=5, pause_s=0.2)


def run_sequential(base_url: str, window: Window) -> BaselineResult:
    return run_baseline("sequential loop", base_url, window, workers=1, pause_s=0.0)
