"""The simulated NEPSE web API as an aiohttp application."""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from etl.simulator import css_wasm
from etl.simulator.arrivals import ArrivalClock
from etl.simulator.config import SimConfig
from etl.simulator.data import SimData
from etl.simulator.faults import FaultInjector, json_error, nginx_error
from etl.simulator.stats import SimStats
from etl.simulator.tokens import TokenStore

DATA_PREFIX = "/api/nots/"
AUTH_PREFIX = "/api/authenticate/"
SIM_PREFIX = "/_sim/"
DEFAULT_PAGE_SIZE = 10
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

CONFIG_KEY = web.AppKey("config", SimConfig)
DATA_KEY = web.AppKey("data", SimData)
STATS_KEY = web.AppKey("stats", SimStats)
TOKENS_KEY = web.AppKey("tokens", TokenStore)
FAULTS_KEY = web.AppKey("faults", FaultInjector)
CSS_WASM_KEY = web.AppKey("css_wasm", bytes)
WORKER_KEY = web.AppKey("worker", ThreadPoolExecutor)
ARRIVALS_KEY = web.AppKey("arrivals", ArrivalClock)

T = TypeVar("T")


class BadRequest(Exception):
    pass


class DroppedResponse(web.Response):
    """Stands in for the answer of a request whose connection was closed; never reaches the client."""


def path_kind(request: web.Request) -> str:
    route = request.match_info.route
    return route.name or "unknown"


def security_id_of(request: web.Request) -> int | None:
    raw = request.match_info.get("security_id")
    return int(raw) if raw is not None else None


# --- middlewares, outermost first ------------------------------------------------------------


def arrival_time(request: web.Request) -> float:
    """When the request's bytes reached the server (the kernel's stamp), else now."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    stamp = request.app[ARRIVALS_KEY].arrival(sock.fileno()) if sock is not None else None
    return time.monotonic() if stamp is None else stamp


@web.middleware
async def stats_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(SIM_PREFIX):
        return await handler(request)
    stats = request.app[STATS_KEY]
    stats.request_started(request.path, path_kind(request), arrived=arrival_time(request))
    outcome = "500"
    try:
        response = await handler(request)
        outcome = "drop" if isinstance(response, DroppedResponse) else str(response.status)
        return response
    except web.HTTPException as error:
        outcome = str(error.status)
        raise
    finally:
        stats.request_finished(outcome)


@web.middleware
async def browser_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    needs_browser = request.app[CONFIG_KEY].require_browser_headers and request.path.startswith("/api/")
    if needs_browser and "Mozilla/" not in request.headers.get("User-Agent", ""):
        return nginx_error(403, "Forbidden")
    return await handler(request)


def drop_connection(request: web.Request) -> web.Response:
    """Close the socket without answering; the client sees a server disconnect."""
    if request.transport is not None:
        request.transport.close()
    return DroppedResponse(status=499)


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    faults = request.app[FAULTS_KEY]
    config = request.app[CONFIG_KEY]
    if request.path.startswith(AUTH_PREFIX):
        if faults.happens(config.p_drop):
            return drop_connection(request)
        if faults.happens(config.p_502):
            return nginx_error(502, "Bad Gateway")
        return await handler(request)
    if not request.path.startswith(DATA_PREFIX):
        return await handler(request)
    delay = faults.delay_s()
    if delay > 0:
        await asyncio.sleep(delay)
    if faults.happens(config.p_drop):
        return drop_connection(request)
    error = faults.error_before_handling(request.path, security_id_of(request))
    if error is not None:
        return error
    response = await handler(request)
    return faults.spoil_body(response) if isinstance(response, web.Response) else response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(DATA_PREFIX):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Salter" or not request.app[TOKENS_KEY].access_is_valid(token):
            return json_error(401, "Unauthorized", "Full authentication is required", request.path)
    return await handler(request)


# --- handlers ----------------------------------------------------------------------------------


async def prove(request: web.Request) -> web.Response:
    return web.json_response(request.app[TOKENS_KEY].issue())


async def refresh_token(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return json_error(400, "Bad Request", "Malformed JSON", request.path)
    token = body.get("refreshToken") if isinstance(body, dict) else None
    tokens = request.app[TOKENS_KEY]
    if not isinstance(token, str) or not tokens.refresh_is_valid(token):
        return json_error(401, "Unauthorized", "Invalid refresh token", request.path)
    return web.json_response(tokens.issue())


async def css_wasm_module(request: web.Request) -> web.Response:
    if request.app[CONFIG_KEY].css_wasm_blocked:
        return nginx_error(404, "Not Found")
    return web.Response(body=request.app[CSS_WASM_KEY], content_type="application/wasm")


async def company_list(request: web.Request) -> web.Response:
    return web.json_response(request.app[DATA_KEY].companies())


async def security_list(request: web.Request) -> web.Response:
    non_delisted = request.query.get("nonDelisted", "false").lower() == "true"
    return web.json_response(request.app[DATA_KEY].securities(non_delisted=non_delisted))


def query_date(request: web.Request, name: str, default: datetime.date) -> datetime.date:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not ISO_DATE.fullmatch(raw):
        raise BadRequest(f"{name} must be YYYY-MM-DD")
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError as error:
        raise BadRequest(f"{name}: {error}") from error


def query_int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise BadRequest(f"{name} must be an integer") from error


def spring_page(rows: list[dict], page: int, size: int) -> dict:
    """A Spring Data page of `rows`; `page` is 0-based."""
    total = len(rows)
    content = rows[page * size : (page + 1) * size]
    total_pages = math.ceil(total / size)
    sort = {"sorted": False, "unsorted": True, "empty": True}
    return {
        "content": content,
        "pageable": {
            "sort": dict(sort),
            "pageNumber": page,
            "pageSize": size,
            "offset": page * size,
            "paged": True,
            "unpaged": False,
        },
        "totalPages": total_pages,
        "totalElements": total,
        "last": page >= total_pages - 1,
        "number": page,
        "size": size,
        "sort": dict(sort),
        "first": page == 0,
        "numberOfElements": len(content),
        "empty": not content,
    }


HistoryRows = Callable[[SimData, int, datetime.date, datetime.date], list[dict]]


async def off_the_loop(request: web.Request, work: Callable[..., T], *args: Any) -> T:
    """Run CPU work (a ten-year history built on first use, a page encoded) on the app's one worker thread.
    The event loop stays free to read and answer other requests meanwhile (their stamps are the kernel's,
    see arrivals.py, but a blocked loop would still delay every answer). One thread, so that the lazily
    filled caches of SimData are never written by two at once."""
    return await asyncio.get_running_loop().run_in_executor(request.app[WORKER_KEY], work, *args)


async def paged_history(request: web.Request, id_name: str, rows_of: HistoryRows) -> web.Response:
    """A daily history as a Spring page, newest first, for the window startDate..endDate."""
    data = request.app[DATA_KEY]
    cap = request.app[CONFIG_KEY].page_size_cap
    try:
        start = query_date(request, "startDate", data.history_start)
        end = query_date(request, "endDate", data.today)
        size = query_int(request, "size", DEFAULT_PAGE_SIZE)
        page = max(query_int(request, "page", 0), 0)
    except BadRequest as error:
        return json_error(400, "Bad Request", str(error), request.path)
    size = min(size, cap) if size > 0 else DEFAULT_PAGE_SIZE
    rows = await off_the_loop(request, rows_of, data, int(request.match_info[id_name]), start, end)
    body = spring_page(rows, page, size)
    body["content"] = request.app[FAULTS_KEY].shorten_page(body["content"])  # the seeded faults stay in order
    request.app[STATS_KEY].rows_served[path_kind(request)] += len(body["content"])
    return web.Response(text=await off_the_loop(request, json.dumps, body), content_type="application/json")


async def price_history(request: web.Request) -> web.Response:
    return await paged_history(request, "security_id", SimData.prices)


async def index_list(request: web.Request) -> web.Response:
    return web.json_response(request.app[DATA_KEY].index_list())


async def index_history(request: web.Request) -> web.Response:
    return await paged_history(request, "index_id", SimData.index_history)


async def reports(request: web.Request) -> web.Response:
    return web.json_response(request.app[DATA_KEY].reports(security_id_of(request)))


async def dividends(request: web.Request) -> web.Response:
    return web.json_response(request.app[DATA_KEY].dividends(security_id_of(request)))


async def profile(request: web.Request) -> web.Response:
    found = request.app[DATA_KEY].profile(security_id_of(request))
    if found is None:
        return json_error(404, "Not Found", "Security not found", request.path)
    return web.json_response(found)


async def sim_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_KEY].snapshot())


async def sim_reset(request: web.Request) -> web.Response:
    request.app[STATS_KEY].reset()
    return web.json_response({"reset": True})


def add_routes(app: web.Application) -> None:
    security = r"{security_id:\d+}"
    app.router.add_get("/assets/prod/css.wasm", css_wasm_module, name="css_wasm")
    app.router.add_get("/api/authenticate/prove", prove, name="prove")
    app.router.add_post("/api/authenticate/refresh-token", refresh_token, name="refresh")
    app.router.add_get("/api/nots/company/list", company_list, name="company_list")
    app.router.add_get("/api/nots/security", security_list, name="security_list")
    app.router.add_get(f"/api/nots/market/history/security/{security}", price_history, name="prices")
    app.router.add_get(f"/api/nots/application/reports/{security}", reports, name="reports")
    app.router.add_get(f"/api/nots/application/dividend/{security}", dividends, name="dividends")
    app.router.add_get(f"/api/nots/security/profile/{security}", profile, name="profile")
    app.router.add_get("/api/nots/index", index_list, name="index_list")
    app.router.add_get(r"/api/nots/index/history/{index_id:\d+}", index_history, name="index_history")
    app.router.add_get("/_sim/stats", sim_stats, name="sim_stats")
    app.router.add_post("/_sim/reset", sim_reset, name="sim_reset")


def create_app(config: SimConfig) -> web.Application:
    app = web.Application(middlewares=[stats_middleware, browser_middleware, fault_middleware, auth_middleware])
    app[CONFIG_KEY] = config
    app[DATA_KEY] = SimData(config.seed, config.n_companies, config.today, config.history_days)
    app[STATS_KEY] = SimStats()
    app[TOKENS_KEY] = TokenStore(access_lifetime_s=config.token_lifetime_s, table=config.junk_table)
    app[CSS_WASM_KEY] = css_wasm.build(config.junk_table)
    app[FAULTS_KEY] = FaultInjector(config)
    app[ARRIVALS_KEY] = ArrivalClock()  # kernel stamps once served on its listening_socket()
    app[WORKER_KEY] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulator-pages")
    app.on_cleanup.append(_stop_worker)
    add_routes(app)
    return app


async def _stop_worker(app: web.Application) -> None:
    app[WORKER_KEY].shutdown(wait=False, cancel_futures=True)
