"""Tests of the NEPSE simulator: synthetic data, the HTTP behaviour copied from the API notes, faults, stats."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from etl.simulator import SimConfig, SimData, SimulatorProcess, create_app
from etl.simulator.config import CLI_FLAGS, add_config_arguments, config_fields, config_from_args, config_to_args
from etl.simulator.stats import max_starts_in_window

TODAY = datetime.date(2026, 6, 15)
SEED = 11
BROWSER_HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Accept": "application/json, text/plain, */*",
}
TRADING_WEEKDAYS = {6, 0, 1, 2, 3}
SECTOR_NAMES = {
    "Commercial Banks", "Development Banks", "Finance", "Microfinance", "Hydro Power", "Life Insurance",
    "Non Life Insurance", "Manufacturing And Processing", "Hotels And Tourism", "Investment", "Tradings",
    "Others", "Mutual Fund",
}  # fmt: skip

# The API notes' reference cleaner, written out again here on purpose: the test must not trust
# anything in the simulator package to check the simulator.
DOC_TABLE = [5, 8, 4, 7, 9, 4, 6, 9, 5, 5, 6, 5, 3, 5, 4, 4, 9, 6, 6, 8,
             8, 6, 8, 6, 5, 8, 4, 9, 5, 9, 8, 5, 3, 4, 7, 7, 4, 7, 3, 9]  # fmt: skip


def doc_positions(salt: int) -> list[int]:
    a, b, c = (salt // 100) % 10, (salt // 10) % 10, salt % 10
    k = DOC_TABLE[a + b + c]
    return [k + 22, a + b + k + 32, a + b + k + 60, b + k + 88, a + k + 110]


def doc_clean(raw: str, salt: int) -> str:
    junk = set(doc_positions(salt))
    return "".join(char for index, char in enumerate(raw) if index not in junk)


def async_test(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(*args, **kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


@asynccontextmanager
async def sim_client(**overrides) -> AsyncIterator[TestClient]:
    config = SimConfig(seed=SEED, today=TODAY, **{"n_companies": 120, **overrides})
    async with TestClient(TestServer(create_app(config), host="127.0.0.1"), headers=BROWSER_HEADERS) as client:
        yield client


async def login(client: TestClient) -> dict[str, str]:
    response = await client.get("/api/authenticate/prove")
    assert response.status == 200
    body = await response.json()
    return {"Authorization": f"Salter {doc_clean(body['accessToken'], body['salt2'])}"}


def sim_data() -> SimData:
    """The data sim_client() serves."""
    return SimData(SEED, 120, TODAY)


def first_company(data: SimData, status: str = "A", instrument_type: str = "Equity") -> dict:
    return next(c for c in data.companies() if c["status"] == status and c["instrumentType"] == instrument_type)


@pytest.fixture(scope="module")
def full_data() -> SimData:
    return SimData(SEED, 600, TODAY)


# --- synthetic data ----------------------------------------------------------------------------


def test_same_seed_gives_same_data_and_other_seed_differs() -> None:
    first, again, other = SimData(5, 150, TODAY), SimData(5, 150, TODAY), SimData(6, 150, TODAY)
    security_id = first_company(first)["id"]
    assert first.companies() == again.companies()
    assert first.served_prices(security_id) == again.served_prices(security_id)
    assert first.reports(security_id) == again.reports(security_id)
    assert first.dividends(security_id) == again.dividends(security_id)
    assert first.profile(security_id) == again.profile(security_id)
    assert first.companies() != other.companies()


def test_moving_today_only_adds_rows() -> None:
    earlier = SimData(5, 150, datetime.date(2026, 3, 1))
    later = SimData(5, 150, datetime.date(2026, 6, 1))
    overlap = (later.history_start, earlier.today)  # served by both
    active = [c["id"] for c in earlier.companies() if c["status"] == "A"][:15]
    for security_id in active:
        assert earlier.prices(security_id, *overlap) == later.prices(security_id, *overlap)
    newer_rows = sum(len(later.prices(i, datetime.date(2026, 3, 2), later.today)) for i in active)
    assert newer_rows > 100


def test_company_list_has_the_real_mix(full_data: SimData) -> None:
    companies = full_data.companies()
    count = len(companies)
    statuses = Counter(c["status"] for c in companies)
    kinds = Counter(c["instrumentType"] for c in companies)
    assert count == 600
    assert 0.57 < statuses["A"] / count < 0.67 and 0.29 < statuses["D"] / count < 0.39
    assert 0.02 < statuses["S"] / count < 0.06
    assert 0.72 < kinds["Equity"] / count < 0.80 and 0.11 < kinds["Non-Convertible Debentures"] / count < 0.17
    assert 0.06 < kinds["Mutual Funds"] / count < 0.12 and 0 < kinds["Preference Shares"] / count < 0.01
    assert {c["sectorName"] for c in companies} == SECTOR_NAMES
    assert all(set(c) == {"id", "companyName", "symbol", "securityName", "status", "companyEmail", "website",
                          "sectorName", "regulatoryBody", "instrumentType"} for c in companies)  # fmt: skip
    ids = [c["id"] for c in companies]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == count
    assert max(ids) - min(ids) + 1 > count  # non-contiguous


def test_company_list_carries_real_world_mess(full_data: SimData) -> None:
    companies = full_data.companies()
    symbols = [c["symbol"] for c in companies]
    assert len({symbol.strip() for symbol in symbols}) == len(symbols)
    assert sum(symbol != symbol.strip() for symbol in symbols) >= 2
    slash = next(c for c in companies if c["symbol"] == "NICAD85/86")
    assert slash["status"] == "A" and slash["instrumentType"] == "Non-Convertible Debentures"
    assert sum("/" in symbol for symbol in symbols) > 5
    assert sum(bool(re.fullmatch(r"[A-Z]{3,6}", symbol)) for symbol in symbols) / len(symbols) > 0.7
    assert any("  " in c["companyName"] for c in companies)
    assert any(c["companyName"] != c["companyName"].strip() for c in companies)
    assert any(c["website"].endswith("\t") for c in companies)


def test_price_rows_are_realistic(full_data: SimData) -> None:
    equities = [c["id"] for c in full_data.companies() if c["status"] == "A" and c["instrumentType"] == "Equity"]
    row_counts = []
    zero_volume_rows = 0
    for security_id in equities[:60]:
        rows = full_data.served_prices(security_id)
        row_counts.append(len(rows))
        dates = [datetime.date.fromisoformat(row["businessDate"]) for row in rows]
        assert dates == sorted(dates, reverse=True)
        assert all(day.weekday() in TRADING_WEEKDAYS for day in dates)
        assert all(full_data.history_start <= day <= TODAY for day in dates)
        for previous, row in zip([None, *rows], rows, strict=False):
            assert row["businessDate"] != (previous or {}).get("businessDate") or row == previous  # copies alike
            assert set(row) == {"businessDate", "totalTrades", "totalTradedQuantity", "totalTradedValue",
                                "highPrice", "lowPrice", "closePrice"}  # fmt: skip
            low, high = sorted((row["lowPrice"], row["highPrice"]))  # a few real days have them swapped
            assert low > 0 and row["closePrice"] > 0
            quantity = row["totalTradedQuantity"]
            assert low * quantity - 0.01 <= row["totalTradedValue"] <= high * quantity + 0.01
            zero_volume_rows += quantity == 0
    assert 225 <= sorted(row_counts)[len(row_counts) // 2] <= 255
    assert zero_volume_rows > 0
    closes = sorted(full_data.served_prices(i)[0]["closePrice"] for i in equities[:60] if full_data.served_prices(i))
    assert 150 < closes[len(closes) // 2] < 2000


def test_price_quirks_come_at_the_real_rates() -> None:
    """Rates measured on ten years of real NEPSE prices: high < low 1 row in 3,900, close outside the
    range 1 in 1,060, about one day in 300 published twice (a third of its rows)."""
    from etl.simulator.companies import TradingTraits
    from etl.simulator.prices import day_row, draw_day, published_rows, published_twice

    traits = TradingTraits(500.0, 0.02, 1.0, 0.0, 5000.0, 100.0, datetime.date(2000, 1, 1), None)
    rng = random.Random(3)
    rows = [day_row(TODAY, 500.0, traits, draw_day(rng)) for _ in range(200_000)]
    high_below_low = sum(row["highPrice"] < row["lowPrice"] for row in rows)
    outside = sum(not row["lowPrice"] <= row["closePrice"] <= row["highPrice"] for row in rows) - high_below_low
    assert 30 < high_below_low < 75 and 140 < outside < 240
    days = [datetime.date(2016, 8, 1) + datetime.timedelta(days=n) for n in range(3650)]
    twice = [day for day in days if published_twice(SEED, day)]
    assert 4 <= len(twice) <= 25
    copies = [len(published_rows(SEED, twice[0], 500.0, traits, draw_day(rng))) for _ in range(2000)]
    assert 0.25 < copies.count(2) / len(copies) < 0.45 and set(copies) == {1, 2}


def test_no_turnover_before_march_2011() -> None:
    old = SimData(SEED, 60, datetime.date(2011, 9, 1), history_days=400)
    equity = next(c["id"] for c in old.companies() if c["status"] == "A" and c["instrumentType"] == "Equity"
                  and old.served_prices(c["id"]))
    rows = old.served_prices(equity)
    before = [row for row in rows if row["businessDate"] < "2011-03-20" and row["totalTradedQuantity"] > 0]
    after = [row for row in rows if row["businessDate"] >= "2011-03-20" and row["totalTradedQuantity"] > 0]
    assert before and after
    assert all(row["totalTradedValue"] == 0 for row in before) and all(row["totalTradedValue"] > 0 for row in after)
    later = SimData(SEED, 60, datetime.date(2011, 12, 1), history_days=400)
    assert later.prices(equity, old.history_start, old.today) == old.prices(equity, later.history_start, old.today)


def test_most_debentures_never_trade(full_data: SimData) -> None:
    debentures = [c for c in full_data.companies() if c["status"] == "A"
                  and c["instrumentType"] == "Non-Convertible Debentures"]
    silent = [c for c in debentures if not full_data.served_prices(c["id"])]
    assert 0.5 < len(silent) / len(debentures) < 0.85  # 54 of 79 in the real list
    assert all(c["symbol"] != "NICAD85/86" for c in silent)


def test_promoter_shares_are_listed_only_in_the_security_list(full_data: SimData) -> None:
    companies = {c["id"] for c in full_data.companies()}
    listed = full_data.securities(non_delisted=True)
    promoters = [entry for entry in listed if entry["id"] not in companies]
    active_equities = [c for c in full_data.companies() if c["status"] == "A" and c["instrumentType"] == "Equity"]
    assert round(len(active_equities) * 4 / 261) == len(promoters) > 0  # 4 per 261 active equities, as in reality
    assert all(entry["symbol"].endswith(("PO", "P")) and "Promoter" in entry["securityName"] for entry in promoters)
    assert all(full_data.served_prices(entry["id"]) for entry in promoters)
    assert len(SimData(SEED, 40, TODAY).promoter_shares()) == 1  # a small simulator still has one


def test_delisted_companies_have_few_or_no_rows(full_data: SimData) -> None:
    delisted = [c["id"] for c in full_data.companies() if c["status"] == "D"][:40]
    assert sum(len(full_data.served_prices(i)) for i in delisted) / len(delisted) < 30


def test_reports_and_dividends_have_the_documented_shape(full_data: SimData) -> None:
    companies = full_data.companies()[:250]
    reports = [report for c in companies for report in full_data.reports(c["id"])]
    dividends = [record for c in companies for record in full_data.dividends(c["id"])]
    assert len({r["id"] for r in reports}) == len(reports) and len({d["id"] for d in dividends}) == len(dividends)
    fiscal_reports = [r["fiscalReport"] for r in reports if r["fiscalReport"] is not None]
    assert not any("modifiedDate" in r for r in reports)  # real report records carry none
    assert 0 < len(reports) - len(fiscal_reports) < 0.1 * len(reports)
    names = {
        (f["reportTypeMaster"]["reportName"], (f["quarterMaster"] or {}).get("quarterName")) for f in fiscal_reports
    }
    assert ("Annual Report", None) in names and ("Quarterly Report", "First Quarter") in names
    assert {f["financialYear"]["fyNameNepali"] for f in fiscal_reports} == {"2081/82", "2082/83"}
    assert any(isinstance(f["epsValue"], str) for f in fiscal_reports)
    assert any(f["epsValue"] is None for f in fiscal_reports)
    symbols = {c["id"]: c["symbol"] for c in companies}
    for record in dividends:
        news = record["companyNews"]
        assert news["newsType"] == "Dividend Declaration"
        assert news["security"]["symbol"] == symbols[news["security"]["id"]]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}", record["modifiedDate"])
    years_per_company = Counter(
        (r["companyNews"]["security"]["id"], r["companyNews"]["dividendsNotice"]["financialYear"]["fyNameNepali"])
        for r in dividends
    )
    assert max(years_per_company.values()) == 2  # some declare twice in a year
    debentures = [c["id"] for c in companies if c["instrumentType"] == "Non-Convertible Debentures"]
    assert all(full_data.reports(i) == [] == full_data.dividends(i) for i in debentures)


# --- HTTP behaviour ------------------------------------------------------------------------------


@async_test
async def test_prove_then_clean_token_serves_data() -> None:
    async with sim_client() as client:
        prove = await (await client.get("/api/authenticate/prove")).json()
        # Every field of the real answer (as the public clients type it), and no other.
        assert set(prove) == {"accessToken", "refreshToken", "salt", "salt1", "salt2", "salt3", "salt4", "salt5",
                              "serverTime", "tokenType", "isDisplayActive", "popupDocFor"}
        assert prove["isDisplayActive"] is False and prove["popupDocFor"] == "ALL" and prove["tokenType"] is None
        assert isinstance(prove["salt"], str) and all(isinstance(prove[f"salt{n}"], int) for n in range(1, 6))
        raw = prove["accessToken"]
        assert len(raw) > 135
        clean = doc_clean(raw, prove["salt2"])
        wrongly_cleaned = "".join(ch for i, ch in enumerate(raw) if i - 1 not in doc_positions(prove["salt2"]))
        for token, expected in ((clean, 200), (raw, 401), (wrongly_cleaned, 401)):
            response = await client.get("/api/nots/company/list", headers={"Authorization": f"Salter {token}"})
            assert response.status == expected
        response = await client.get("/api/nots/company/list", headers={"Authorization": f"Salter {clean}"})
        assert await response.json() == sim_data().companies()
        assert (await client.get("/api/nots/company/list")).status == 401


@async_test
async def test_refresh_token_needs_the_clean_refresh_token() -> None:
    async with sim_client() as client:
        prove = await (await client.get("/api/authenticate/prove")).json()
        refresh = doc_clean(prove["refreshToken"], prove["salt1"])
        good = await client.post("/api/authenticate/refresh-token", json={"refreshToken": refresh})
        renewed = await good.json()
        auth = {"Authorization": f"Salter {doc_clean(renewed['accessToken'], renewed['salt2'])}"}
        assert (await client.get("/api/nots/company/list", headers=auth)).status == 200
        bad = await client.post("/api/authenticate/refresh-token", json={"refreshToken": prove["refreshToken"]})
        assert bad.status == 401


@pytest.mark.alone
@async_test
async def test_expired_token_is_refused() -> None:
    async with sim_client(token_lifetime_s=0.3) as client:
        auth = await login(client)
        assert (await client.get("/api/nots/company/list", headers=auth)).status == 200
        await asyncio.sleep(0.4)
        response = await client.get("/api/nots/company/list", headers=auth)
        assert response.status == 401 and (await response.json())["status"] == 401


@async_test
async def test_non_browser_client_gets_nginx_403() -> None:
    async with sim_client() as client:
        response = await client.get("/api/authenticate/prove", headers={"User-Agent": "python-requests/2.32"})
        assert response.status == 403
        assert response.content_type == "text/html" and "nginx" in await response.text()


@async_test
async def test_price_pages_concatenate_to_the_served_history() -> None:
    async with sim_client(page_size_cap=50) as client:
        auth = await login(client)
        data = sim_data()
        security_id = first_company(data)["id"]
        path = f"/api/nots/market/history/security/{security_id}"
        pages, page_number = [], 0
        while True:
            response = await client.get(path, params={"size": "500", "page": str(page_number)}, headers=auth)
            pages.append(await response.json())
            if pages[-1]["last"]:
                break
            page_number += 1
        expected = data.served_prices(security_id)
        assert [row for page in pages for row in page["content"]] == expected
        assert {page["size"] for page in pages} == {50} and len(pages) == pages[0]["totalPages"]
        assert pages[0]["totalElements"] == len(expected) and pages[0]["first"] and not pages[1]["first"]
        assert pages[1]["pageable"] == {"sort": pages[1]["sort"], "pageNumber": 1, "pageSize": 50, "offset": 50,
                                        "paged": True, "unpaged": False}  # fmt: skip
        assert all(p["numberOfElements"] == len(p["content"]) for p in pages)
        beyond = await (await client.get(path, params={"size": "50", "page": "99"}, headers=auth)).json()
        assert beyond["content"] == [] and beyond["last"] and beyond["empty"]


@async_test
async def test_price_query_parameters() -> None:
    async with sim_client() as client:
        auth = await login(client)
        data = sim_data()
        security_id = first_company(data)["id"]
        path = f"/api/nots/market/history/security/{security_id}"
        window = {"startDate": "2026-05-01", "endDate": "2026-05-31", "size": "100"}
        ranged = await (await client.get(path, params=window, headers=auth)).json()
        expected = data.prices(security_id, datetime.date(2026, 5, 1), datetime.date(2026, 5, 31))
        assert ranged["content"] == expected and 15 < len(expected) < 24
        default = await (await client.get(path, headers=auth)).json()
        assert default["size"] == 10 and default["totalElements"] == len(data.served_prices(security_id))
        bad_date = await client.get(path, params={"startDate": "2026-5-1"}, headers=auth)
        assert bad_date.status == 400
        unknown = await (await client.get("/api/nots/market/history/security/99999", headers=auth)).json()
        assert unknown["content"] == [] and unknown["totalElements"] == 0


@async_test
async def test_reports_dividends_profile_and_lists_are_served_as_generated() -> None:
    async with sim_client() as client:
        auth = await login(client)
        data = sim_data()
        security_id = first_company(data)["id"]
        for path, expected in (
            (f"/api/nots/application/reports/{security_id}", data.reports(security_id)),
            (f"/api/nots/application/dividend/{security_id}", data.dividends(security_id)),
            (f"/api/nots/security/profile/{security_id}", data.profile(security_id)),
            ("/api/nots/application/reports/99999", []),
            ("/api/nots/application/dividend/99999", []),
            ("/api/nots/security?nonDelisted=true", data.securities(non_delisted=True)),
        ):
            response = await client.get(path, headers=auth)
            assert response.status == 200 and await response.json() == expected
        assert (await client.get("/api/nots/security/profile/99999", headers=auth)).status == 404
        assert (await client.get("/api/nots/no/such/thing", headers=auth)).status == 404
        listed = await (await client.get("/api/nots/security?nonDelisted=true", headers=auth)).json()
        assert {entry["activeStatus"] for entry in listed} <= {"A", "S"}
        assert set(listed[0]) == {"id", "symbol", "securityName", "name", "activeStatus"}


# --- faults --------------------------------------------------------------------------------------


@async_test
async def test_p_502_breaks_every_data_and_auth_call() -> None:
    async with sim_client(p_502=1.0) as client:
        assert (await client.get("/api/authenticate/prove")).status == 502
        for path in ("/api/nots/company/list", "/api/nots/application/reports/131"):
            assert (await client.get(path)).status == 502
        assert (await client.get("/_sim/stats")).status == 200


@async_test
async def test_p_429_sends_retry_after() -> None:
    async with sim_client(p_429=1.0, retry_after_s=2.5) as client:
        auth = await login(client)
        response = await client.get("/api/nots/company/list", headers=auth)
        assert response.status == 429 and response.headers["Retry-After"] == "2.5"


@async_test
async def test_fail_ids_always_answer_500() -> None:
    failing, healthy = [c["id"] for c in sim_data().companies()[:2]]
    async with sim_client(fail_ids=frozenset({failing})) as client:
        auth = await login(client)
        for _ in range(3):
            assert (await client.get(f"/api/nots/application/reports/{failing}", headers=auth)).status == 500
            assert (await client.get(f"/api/nots/application/reports/{healthy}", headers=auth)).status == 200


@async_test
async def test_dropped_connection_empty_and_malformed_bodies() -> None:
    async with sim_client(p_drop=1.0) as client:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.get("/api/nots/company/list")
        stats = await (await client.get("/_sim/stats")).json()
        assert stats["status_counts"] == {"drop": 1}
    for fault in ("p_empty_200", "p_malformed_json"):
        async with sim_client(**{fault: 1.0}) as client:
            response = await client.get("/api/nots/company/list", headers=await login(client))
            assert response.status == 200
            with pytest.raises(json.JSONDecodeError):
                json.loads(await response.text())


@async_test
async def test_short_page_misses_rows_but_claims_them() -> None:
    async with sim_client(p_short_page=1.0) as client:
        security_id = first_company(sim_data())["id"]
        path = f"/api/nots/market/history/security/{security_id}"
        page = await (await client.get(path, params={"size": "100"}, headers=await login(client))).json()
        assert page["numberOfElements"] == 100 and len(page["content"]) < 100


# --- stats ---------------------------------------------------------------------------------------


def test_max_starts_in_window_is_half_open() -> None:
    assert max_starts_in_window([]) == 0
    assert max_starts_in_window([0.0, 1.0]) == 1
    assert max_starts_in_window([2.0, 0.0, 0.5, 0.999, 1.0, 1.5]) == 3
    assert max_starts_in_window([0.0, 0.1, 0.2, 0.3, 5.0]) == 4


@pytest.mark.alone
@async_test
async def test_stats_measure_a_concurrent_burst() -> None:
    async with sim_client(latency_median_s=0.2) as client:
        auth = await login(client)
        await client.post("/_sim/reset")
        responses = await asyncio.gather(*(client.get("/api/nots/company/list", headers=auth) for _ in range(8)))
        assert [r.status for r in responses] == [200] * 8
        stats = await (await client.get("/_sim/stats")).json()
        assert stats["requests"] == stats["data_requests"] == 8 and stats["auth_requests"] == 0
        assert stats["max_in_flight"] >= 2 and stats["max_starts_per_1s"] == 8
        assert stats["status_counts"] == {"200": 8} and stats["per_path_kind"] == {"company_list": 8}
        assert len(stats["starts"]) == 8 and stats["starts"][0] == 0.0


@async_test
async def test_a_request_is_stamped_on_arrival_while_a_long_history_is_being_built(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a history (tens of ms for ten years of prices) must not hold up the event loop: requests
    arriving meanwhile are stamped when they come, not in a bunch afterwards (the busiest second)."""
    build_s = 0.6
    built = SimData.prices

    def slow_prices(data: SimData, *args: object) -> list[dict]:
        time.sleep(build_s)
        return built(data, *args)

    monkeypatch.setattr(SimData, "prices", slow_prices)
    async with sim_client() as client:
        auth = await login(client)
        await client.post("/_sim/reset")
        path = f"/api/nots/market/history/security/{first_company(sim_data())['id']}"
        history = asyncio.ensure_future(client.get(path, headers=auth))
        await asyncio.sleep(0.1)
        companies = await client.get("/api/nots/company/list", headers=auth)
        assert companies.status == 200 and not history.done()
        assert (await history).status == 200
        stats = await (await client.get("/_sim/stats")).json()
        assert stats["per_path_kind"] == {"prices": 1, "company_list": 1}
        assert stats["starts"][1] - stats["starts"][0] < build_s / 2


# --- command line and subprocess -----------------------------------------------------------------


def test_every_config_field_has_a_flag_and_round_trips() -> None:
    assert {flag.field for flag in CLI_FLAGS} | {"require_browser_headers"} == config_fields()
    config = SimConfig(seed=3, today=TODAY, p_502=0.25, fail_ids=frozenset({5, 7}), require_browser_headers=False)
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    assert config_from_args(parser.parse_args(config_to_args(config))) == config
    spread = config_from_args(parser.parse_args(["--fault-rate", "0.7", "--p-drop", "0"]))
    assert spread.p_drop == 0 and spread.p_502 == pytest.approx(0.1) and spread.p_short_page == pytest.approx(0.1)


@pytest.mark.alone
def test_simulator_subprocess_serves_and_counts() -> None:
    config = SimConfig(seed=SEED, n_companies=120, today=TODAY, fail_ids=frozenset({12345}))

    async def exercise(base_url: str) -> None:
        async with aiohttp.ClientSession(base_url, headers=BROWSER_HEADERS) as session:
            prove = await (await session.get("/api/authenticate/prove")).json()
            auth = {"Authorization": f"Salter {doc_clean(prove['accessToken'], prove['salt2'])}"}
            companies = await (await session.get("/api/nots/company/list", headers=auth)).json()
            assert companies == sim_data().companies()
            assert (await session.get("/api/nots/application/reports/12345", headers=auth)).status == 500

    started = time.monotonic()
    with SimulatorProcess(config) as sim:
        assert time.monotonic() - started < 5
        asyncio.run(exercise(sim.base_url))
        stats = sim.stats()
        assert stats["requests"] == 3 and stats["status_counts"] == {"200": 2, "500": 1}
        sim.reset_stats()
        assert sim.stats()["requests"] == 0
        pid = sim._process.pid
    assert not sim.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
