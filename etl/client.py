"""The NEPSE HTTP client: auth handshake, politeness, retries, paging, hostile-server guards.

One request = pacer slot (this process) -> host budget slot -> send -> classify. Every
failure becomes a FetchError whose outcome key is looked up in `failures.OUTCOMES`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from loguru import logger

from etl import api, tls
from etl.budget import CURRENT_WORK, RETRYING, HostBudget, ProcessPacer, RateChange, StrainDetector
from etl.failures import STRAIN_WEIGHTS, Action, FetchError, RetryPolicy, status_outcome
from etl.logs import emit_event
from etl.settings import Settings

Validator = Callable[[Any], None]


class StopRequested(Exception):
    """The run is being interrupted: start no new request."""


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    throttle_events: int = 0
    auth_calls: int = 0


def _retry_after_seconds(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class NepseClient:
    """Use as `async with NepseClient(...) as client:` inside one event loop."""

    def __init__(self, settings: Settings, budget: HostBudget, *, stop_check: Callable[[], bool] | None = None,
                 on_rate_change: Callable[[RateChange], None] | None = None, seed: int | None = None) -> None:
        self.settings = settings
        self.base_url = settings.base_url
        self.host = urlsplit(settings.base_url).netloc
        self.budget = budget
        self.pacer = ProcessPacer(settings.concurrency, settings.pacing)
        self.policy = RetryPolicy(settings.max_attempts, settings.backoff_base, settings.backoff_cap)
        self.stats = ClientStats()
        self._stop_check = stop_check or (lambda: False)
        self._on_rate_change = on_rate_change or _log_rate_change
        self._strain = StrainDetector()
        self._rng = random.Random(seed)
        self._max_body = int(settings.max_body_mb * 1024 * 1024)
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_time = 0.0
        self._token_lock = asyncio.Lock()

    async def __aenter__(self) -> NepseClient:
        connector = aiohttp.TCPConnector(limit=self.settings.concurrency + 1, ssl=tls.client_context(self.settings))
        self._session = aiohttp.ClientSession(
            headers=api.browser_headers(self.base_url),
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
        )
        # aiohttp silently resends an idempotent request once when the server drops the connection.
        # That resend would bypass the host budget and our retry table, so turn it off (no public switch).
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    # ---- public calls

    async def get_json(self, path: str, params: dict[str, Any] | None = None,
                       validate: Validator | None = None) -> Any:
        """GET an authenticated /api/nots path, retrying as OUTCOMES says."""
        body = await self._with_retries(lambda: self._authed_get(path, params, validate))
        work = CURRENT_WORK.get()
        if work is not None:
            work.request_done()
        return body

    async def get_pages(self, path: str, params: dict[str, Any], page_size: int, max_pages: int,
                        convert: Callable[[list[Any]], Any] | None = None) -> list[Any]:
        """Every row of a Spring-paged endpoint, checking each page against its own metadata. With `convert`,
        each page's rows are handed to it as the page arrives and the list holds what it returned, one item
        a page (the decoded JSON of a page need not outlive it)."""
        rows: list[Any] = []
        for page in range(max_pages):
            body = await self.get_json(path, {**params, "size": page_size, "page": page},
                                       validate=lambda b, p=page: check_spring_page(b, p))
            if convert is None:
                rows.extend(body["content"])
            else:
                rows.append(convert(body["content"]))
            total_pages = int(body.get("totalPages", 0))
            if body.get("last", True) or not body["content"] or page + 1 >= total_pages:
                return rows
            work = CURRENT_WORK.get()
            if work is not None:
                work.pages_known(page, total_pages)
        raise FetchError("too_many_pages", f"more than {max_pages} pages (the server never said 'last')")

    # ---- retries and auth

    async def _with_retries(self, attempt_once: Callable[[], Any]) -> Any:
        attempt = 1
        while True:
            retrying = RETRYING.set(attempt > 1)  # a retry goes before this type's fresh requests
            try:
                result = await attempt_once()
                self._strain.record(0)
                return result
            except FetchError as error:
                error.attempts = attempt
                self._note_failure(error)
                if not self.policy.should_retry(error, attempt):
                    raise
                wait = self.policy.wait_seconds(error, attempt, self._rng)
                logger.debug(f"{error.detail}; retry {attempt} in {wait:.2f}s")
            finally:
                RETRYING.reset(retrying)
            self.stats.retries += 1
            attempt += 1
            await asyncio.sleep(wait)

    def _note_failure(self, error: FetchError) -> None:
        if self._strain.record(STRAIN_WEIGHTS.get(error.action, 0)):
            reason = "repeated HTTP 429" if error.action is Action.THROTTLED else "burst of failures"
            change = self.budget.throttle(reason)
            if change is not None:
                self.stats.throttle_events += 1
                self._on_rate_change(change)

    async def _authed_get(self, path: str, params: dict[str, Any] | None, validate: Validator | None) -> Any:
        token = await self._access_token()
        try:
            return await self._request("GET", path, params=params, headers=api.auth_header(token),
                                       validate=validate)
        except FetchError as error:
            # Only the token that failed is dropped: requests still in flight with an older token
            # must not throw away the fresh one another coroutine has just proved.
            if error.action is Action.AUTH and self._token == token:
                self._token = None
            raise

    async def _access_token(self) -> str:
        async with self._token_lock:
            fresh = time.monotonic() - self._token_time < api.TOKEN_REFRESH_AFTER_S
            if self._token is None or not fresh:
                body = await self._with_retries(lambda: self._request("GET", api.PROVE_PATH,
                                                                      validate=check_prove_body))
                self.stats.auth_calls += 1
                self._token, _refresh = api.clean_tokens(body)
                self._token_time = time.monotonic()
            return self._token

    # ---- one request

    async def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                       headers: dict[str, str] | None = None, validate: Validator | None = None) -> Any:
        if self._stop_check():
            raise StopRequested()
        assert self._session is not None, "use NepseClient as an async context manager"
        async with self.pacer:
            change = await self.budget.acquire()
            if change is not None:
                self._on_rate_change(change)
            self.stats.requests += 1
            started = time.monotonic()
            body = await self._send(method, path, params, headers)
        logger.debug(f"{method} {path} {params or ''} -> {len(body):,} bytes in {time.monotonic() - started:.3f}s")
        data = parse_json_body(body)
        if validate is not None:
            validate(data)
        return data

    async def _send(self, method: str, path: str, params: dict[str, Any] | None,
                    headers: dict[str, str] | None) -> bytes:
        assert self._session is not None
        url = self.base_url + path
        try:
            async with self._session.request(method, url, params=params, headers=headers) as response:
                if response.status >= 400:
                    text = (await response.content.read(2048)).decode("utf-8", "replace")
                    raise FetchError(status_outcome(response.status, text), f"HTTP {response.status}",
                                     status=response.status, retry_after=_retry_after_seconds(response.headers))
                return await self._read_capped(response)
        except FetchError:
            raise
        except aiohttp.ClientConnectorCertificateError as exc:
            reason = getattr(exc.certificate_error, "verify_message", None) or ""
            raise FetchError("tls_error", tls.advice(self.host, reason)) from None
        except aiohttp.ClientSSLError as exc:
            raise FetchError("tls_error", f"TLS error talking to {self.host}: {exc}") from None
        except aiohttp.ServerDisconnectedError:
            raise FetchError("disconnected", "server disconnected") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientOSError, aiohttp.ClientConnectionError) as exc:
            raise FetchError("connection_error", f"connection error: {type(exc).__name__}") from None
        except asyncio.TimeoutError:
            raise FetchError("timeout", f"no answer within {self.settings.timeout:g}s") from None

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self._max_body:
            raise FetchError("body_too_large", f"response of {declared:,} bytes is over the "
                             f"{self.settings.max_body_mb:g} MB cap (NEPSE_MAX_BODY_MB)")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > self._max_body:
                raise FetchError("body_too_large", f"response over the {self.settings.max_body_mb:g} MB cap "
                                 "(NEPSE_MAX_BODY_MB)")
            chunks.append(chunk)
        return b"".join(chunks)


def _log_rate_change(change: RateChange) -> None:
    direction = "halved" if change.new_rate < change.old_rate else "raised"
    emit_event("rate_changed", rate=round(change.new_rate, 3), old_rate=round(change.old_rate, 3),
               reason=f"host rate {direction}: {change.reason}")


def parse_json_body(body: bytes) -> Any:
    if not body.strip():
        raise FetchError("empty_body", "empty 200 response")
    try:
        return json.loads(body)
    except ValueError:
        raise FetchError("bad_json", "response is not valid JSON") from None


def check_prove_body(body: Any) -> None:
    keys = ("accessToken", "refreshToken", "salt1", "salt2")
    if not isinstance(body, dict) or any(key not in body for key in keys):
        raise FetchError("bad_shape", "authentication answer lacks the token fields")
    try:
        api.clean_tokens(body)
    except (ValueError, TypeError) as exc:
        raise FetchError("bad_shape", f"unusable token: {exc}") from None


def check_json_list(body: Any) -> None:
    if not isinstance(body, list):
        raise FetchError("bad_shape", f"expected a JSON array, got {type(body).__name__}")


def check_json_object(body: Any) -> None:
    if not isinstance(body, dict):
        raise FetchError("bad_shape", f"expected a JSON object, got {type(body).__name__}")


def check_spring_page(body: Any, page: int) -> None:
    """A page that contradicts its own metadata is a page NEPSE silently cut short."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise FetchError("bad_shape", "expected a Spring page with a 'content' array")
    content = body["content"]
    number = body.get("number", page)
    if int(number) != page:
        raise FetchError("inconsistent_page", f"asked for page {page}, got page {number}")
    if "numberOfElements" in body and int(body["numberOfElements"]) != len(content):
        raise FetchError("inconsistent_page", f"page {page} claims {body['numberOfElements']} rows, "
                         f"carries {len(content)}")
    size = int(body.get("size") or 0)
    total = body.get("totalElements")
    if size <= 0 or total is None:
        return
    expected = max(0, min(size, int(total) - page * size))
    if len(content) != expected:
        raise FetchError("inconsistent_page", f"page {page} carries {len(content)} rows where "
                         f"{expected} were due ({total} in all, {size} a page)")
