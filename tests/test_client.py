"""The client against a hostile or broken server: caps, lying pages, Retry-After, 401 and re-prove."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone

import pytest
from aiohttp import web

from etl import api
from etl import client as client_module
from etl.budget import HostBudget, HostLedger
from etl.client import NepseClient, StopRequested, retry_after_seconds
from etl.failures import FetchError
from etl.paging import SpringPaginator
from tests.fake_nepse import CLEAN, Server, handler


def test_a_body_over_the_cap_is_refused_without_retry(run_client) -> None:
    server = Server()
    server.app.router.add_get("/api/nots/big", handler(lambda r: web.Response(body=b"[" + b"1," * 700_000 + b"1]")))
    with pytest.raises(FetchError) as raised:
        run_client(server, lambda c: c.get_json("/api/nots/big"), max_body_mb=1.0)
    assert raised.value.outcome == "body_too_large" and server.count("/api/nots/big") == 1


def test_a_page_loop_that_never_ends_stops_at_max_pages(run_client) -> None:
    server = Server()

    async def endless(request: web.Request) -> web.Response:
        page = int(request.query["page"])
        return web.json_response({"content": [{"n": page}] * 2, "number": page, "size": 2,
                                  "totalElements": 10**9, "totalPages": 5 * 10**8, "last": False,
                                  "numberOfElements": 2})

    server.app.router.add_get("/api/nots/endless", endless)
    with pytest.raises(FetchError) as raised:
        run_client(server, lambda c: c.get_pages("/api/nots/endless", {}, SpringPaginator(2, 7)))
    assert raised.value.outcome == "too_many_pages"
    assert server.count("/api/nots/endless") == 7


def test_a_total_that_lies_is_a_clear_error_not_a_hang(run_client) -> None:
    server = Server()

    async def lying(request: web.Request) -> web.Response:
        page = int(request.query["page"])
        content = [{"n": 1}, {"n": 2}] if page == 0 else []
        return web.json_response({"content": content, "number": page, "size": 2, "totalElements": 50,
                                  "totalPages": 25, "last": False, "numberOfElements": len(content)})

    server.app.router.add_get("/api/nots/lying", lying)
    with pytest.raises(FetchError) as raised:
        run_client(server, lambda c: c.get_pages("/api/nots/lying", {}, SpringPaginator(2, 100)))
    assert raised.value.outcome == "inconsistent_page"
    assert raised.value.attempts == 3


def test_pages_are_read_until_last_and_concatenated(run_client) -> None:
    server = Server()
    rows = [{"n": n} for n in range(7)]

    async def paged(request: web.Request) -> web.Response:
        page, size = int(request.query["page"]), 3  # the server caps the size we asked for
        content = rows[page * size:(page + 1) * size]
        return web.json_response({"content": content, "number": page, "size": size, "totalElements": 7,
                                  "totalPages": 3, "last": page == 2, "numberOfElements": len(content)})

    server.app.router.add_get("/api/nots/paged", paged)
    assert run_client(server, lambda c: c.get_pages("/api/nots/paged", {}, SpringPaginator(500, 10))) == rows


def test_retry_after_is_honoured(run_client) -> None:
    server = Server()
    answers = iter([web.Response(status=429, headers={"Retry-After": "0.6"}), web.json_response([1])])
    server.app.router.add_get("/api/nots/busy", handler(lambda r: next(answers)))
    assert run_client(server, lambda c: c.get_json("/api/nots/busy")) == [1]
    times = [t for path, t in server.seen if path == "/api/nots/busy"]
    assert times[1] - times[0] >= 0.6


def test_empty_and_malformed_200s_are_retried(run_client) -> None:
    server = Server()
    answers = iter([web.Response(body=b""), web.Response(body=b'{"content": [1, 2'), web.json_response({"ok": 1})])
    server.app.router.add_get("/api/nots/flaky", handler(lambda r: next(answers)))
    assert run_client(server, lambda c: c.get_json("/api/nots/flaky")) == {"ok": 1}
    assert server.count("/api/nots/flaky") == 3


def test_401_reproves_once_and_retries_and_the_token_is_clean(run_client) -> None:
    server = Server()
    seen_headers: list[str] = []

    async def guarded(request: web.Request) -> web.Response:
        seen_headers.append(request.headers.get("Authorization", ""))
        if len(seen_headers) == 1:
            return web.json_response({"error": "expired"}, status=401)
        return web.json_response(["data"])

    server.app.router.add_get("/api/nots/guarded", guarded)
    assert run_client(server, lambda c: c.get_json("/api/nots/guarded")) == ["data"]
    assert server.count(api.PROVE_PATH) == 2
    assert seen_headers == [f"Salter {CLEAN}"] * 2


@pytest.mark.parametrize("refresh_token", [None, "too short to clean", 12345])
def test_the_refresh_token_is_never_used_so_a_missing_or_unusable_one_fails_nothing(run_client,
                                                                                    refresh_token) -> None:
    server = Server()
    server.refresh_token = refresh_token
    server.app.router.add_get("/api/nots/data", handler(lambda r: web.json_response([5])))
    assert run_client(server, lambda c: c.get_json("/api/nots/data")) == [5]
    assert server.count(api.PROVE_PATH) == 1


@pytest.mark.parametrize("status", [400, 403, 404])
def test_terminal_statuses_are_not_retried(status: int, run_client) -> None:
    server = Server()
    server.app.router.add_get("/api/nots/no", handler(lambda r: web.Response(status=status, text="<html>nginx</html>")))
    with pytest.raises(FetchError) as raised:
        run_client(server, lambda c: c.get_json("/api/nots/no"))
    assert raised.value.status == status and raised.value.attempts == 1
    assert server.count("/api/nots/no") == 1


def test_bad_token_500_is_treated_as_auth(run_client) -> None:
    server = Server()
    answers = iter([web.Response(status=500, text=json.dumps({"message": "invalid JWE header"})),
                    web.json_response([2])])
    server.app.router.add_get("/api/nots/jwe", handler(lambda r: next(answers)))
    assert run_client(server, lambda c: c.get_json("/api/nots/jwe")) == [2]
    assert server.count(api.PROVE_PATH) == 2


def test_repeated_429s_halve_the_host_rate(make_budget, run_client) -> None:
    server = Server()
    answers = iter([web.Response(status=429, headers={"Retry-After": "0"}) for _ in range(3)]
                   + [web.json_response([3])])
    server.app.router.add_get("/api/nots/throttled", handler(lambda r: next(answers)))
    budget = make_budget(40, 5, 10)
    assert run_client(server, lambda c: c.get_json("/api/nots/throttled"), budget, max_attempts=4) == [3]
    assert (budget.rate, budget.throttle_events) == (20, 1)


class ExpiringTokens(Server):
    """Tokens live `lifetime` seconds from their prove; `/api/nots/data` answers 401 to an older one."""

    def __init__(self, lifetime: float) -> None:
        super().__init__()
        self.lifetime = lifetime
        self.proved_at: list[float] = []
        self.app.router.add_get("/api/nots/data", self._data)

    async def _prove(self, request: web.Request) -> web.Response:
        self.proved_at.append(time.monotonic())
        return await super()._prove(request)

    async def _data(self, request: web.Request) -> web.Response:
        if time.monotonic() - self.proved_at[-1] > self.lifetime:
            return web.json_response({"error": "expired"}, status=401)
        return web.json_response([1])


@pytest.mark.alone
def test_the_token_is_taken_after_the_budget_slot_so_a_long_wait_cannot_stale_it(run_client, make_budget) -> None:
    """Eight requests queue ~0.8 s for their slots behind a 10/s budget; tokens live 0.3 s."""
    server = ExpiringTokens(lifetime=0.3)

    async def many(client: NepseClient) -> list:
        return await asyncio.gather(*[client.get_json("/api/nots/data") for _ in range(8)])

    assert run_client(server, many, make_budget(10, 1, 60), concurrency=8, max_attempts=2) == [[1]] * 8
    assert server.count(api.PROVE_PATH) <= 8  # one renewal per request at worst, not a storm


def test_a_stop_drops_the_requests_still_waiting_for_their_budget_slot(run_client, make_budget) -> None:
    """Once a token is held, nine requests queue behind a 2/s budget; the stop comes as the first of them
    reaches the server. The others are not in flight: they end unsent instead of waiting out their slots."""
    server = Server()
    answered: list[bool] = []
    server.app.router.add_get("/api/nots/data", handler(lambda r: answered.append(True) or web.json_response([1])))

    async def one_then_nine(client: NepseClient) -> list:
        await client.get_json("/api/nots/data")
        return await asyncio.gather(*[client.get_json("/api/nots/data") for _ in range(9)], return_exceptions=True)

    outcomes = run_client(server, one_then_nine, make_budget(2, 1, 60), stop_check=lambda: len(answered) >= 2,
                          concurrency=10)
    assert outcomes[0] == [1]
    assert all(isinstance(outcome, StopRequested) for outcome in outcomes[1:]), outcomes
    assert server.count("/api/nots/data") == 2


def test_one_watcher_looks_at_the_stop_flag_however_many_requests_wait(run_client, make_budget,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten requests queue behind a 10/s budget for about a second. The flag is looked at by one watcher every
    STOP_POLL_S and once as each request begins, not by every waiting request every STOP_POLL_S (which looked
    ~500 times here: the ten waits add up to ~5 s)."""
    monkeypatch.setattr(client_module, "STOP_POLL_S", 0.01)
    server = Server()
    server.app.router.add_get("/api/nots/data", handler(lambda r: web.json_response([1])))
    looks: list[float] = []

    async def ten(client: NepseClient) -> list:
        return await asyncio.gather(*[client.get_json("/api/nots/data") for _ in range(10)])

    began = time.monotonic()
    assert run_client(server, ten, make_budget(10, 1, 60), stop_check=lambda: looks.append(1) and False,
                      concurrency=10) == [[1]] * 10
    elapsed = time.monotonic() - began
    assert elapsed > 0.9  # eleven starts (the token's and ten) at 10/s
    assert len(looks) <= elapsed / 0.01 + 2 * 10 + 20


def test_a_401_right_after_a_fresh_token_is_an_auth_failure_with_its_own_advice(run_client) -> None:
    from etl.failures import advice_for

    server = ExpiringTokens(lifetime=-1)  # every token is refused
    with pytest.raises(FetchError) as raised:
        run_client(server, lambda c: c.get_json("/api/nots/data"), max_attempts=6)
    assert raised.value.outcome == "auth_rejected"
    assert server.count(api.PROVE_PATH) == 2  # re-proved once, not six times
    advice = advice_for(raised.value.outcome)
    assert "--max-rps" not in advice and "token" in advice


NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0), (" 1.5 ", 1.5), ("-3", 0.0), (None, None), ("soon", None), ("inf", None), ("nan", None),
    ("Sat, 28 Nov 2026 12:10:00 GMT", 600.0),  # the IMF-fixdate form
    ("Saturday, 28-Nov-26 12:00:30 GMT", 30.0),  # the obsolete RFC 850 form
    ("Sat Nov 28 12:01:00 2026", 60.0),  # asctime
    ("Sat, 28 Nov 2026 11:00:00 GMT", 0.0),  # already past
])
def test_retry_after_is_read_as_seconds_or_as_an_http_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


def test_a_retry_after_date_in_the_past_is_retried_at_once(run_client) -> None:
    server = Server()
    answers = iter([web.Response(status=503, headers={"Retry-After": "Thu, 01 Jan 2026 00:00:00 GMT"}),
                    web.json_response([4])])
    server.app.router.add_get("/api/nots/back", handler(lambda r: next(answers)))
    assert run_client(server, lambda c: c.get_json("/api/nots/back")) == [4]
    assert server.count("/api/nots/back") == 2


@pytest.mark.parametrize("header", ["3600", "Fri, 01 Jan 2100 00:00:00 GMT"])
def test_a_retry_after_beyond_the_cap_fails_the_request_with_the_servers_value(header: str, run_client) -> None:
    server = Server()
    server.app.router.add_get("/api/nots/later", handler(
        lambda r: web.Response(status=429, headers={"Retry-After": header})))
    with pytest.raises(FetchError) as raised:
        run_client(server, lambda c: c.get_json("/api/nots/later"), max_retry_after=600.0)
    error = raised.value
    assert error.outcome == "retry_after_too_long" and error.attempts == 1
    assert f"(Retry-After: {header})" in error.detail and "--max-retry-after 600 s" in error.detail
    assert server.count("/api/nots/later") == 1


@pytest.fixture
def granted_starts(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The times of the starts the host's ledger grants during the test, in order."""
    granted: list[float] = []
    try_start = HostLedger.try_start

    def recording_try_start(ledger: HostLedger, now: float, count: int, window_s: float) -> float:
        wait = try_start(ledger, now, count, window_s)
        if wait == 0.0:
            granted.append(now)
        return wait

    monkeypatch.setattr(HostLedger, "try_start", recording_try_start)
    return granted


def test_every_request_written_tells_the_budget_its_own_start(run_client, make_budget, granted_starts: list[float],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget moves a start written late to when it was written (HostBudget.sent): each request must name
    the start it was given, the renewal of a stale token its own slot of the pair and the request the other."""
    told: list[float | None] = []
    monkeypatch.setattr(HostBudget, "sent", lambda budget, started: told.append(started))
    server = ExpiringTokens(lifetime=0.1)

    async def spaced(client: NepseClient) -> None:
        for _ in range(4):
            await client.get_json("/api/nots/data")
            await asyncio.sleep(0.15)  # the token has expired: the next request renews it first

    run_client(server, spaced, make_budget(40, 5, 10), max_attempts=4)
    assert server.count(api.PROVE_PATH) >= 3 and len(told) == len(server.seen)
    assert None not in told and len(set(told)) == len(told) and set(told) <= set(granted_starts)


def test_requests_waiting_for_the_first_token_take_no_budget_slot_they_cannot_use(run_client, make_budget,
                                                                                  granted_starts: list[float]) -> None:
    """A type's process starts its requests together, before it holds a token: one proves it, the others wait
    for it before they ask for a slot, so every slot the host gives goes to a request that is sent."""
    server = ExpiringTokens(lifetime=60)

    async def five_at_once(client: NepseClient) -> list:
        return await asyncio.gather(*[client.get_json("/api/nots/data") for _ in range(5)])

    assert run_client(server, five_at_once, make_budget(40, 5, 10), concurrency=5) == [[1]] * 5
    assert server.count(api.PROVE_PATH) == 1
    assert len(granted_starts) == len(server.seen) == 6
