"""The NEPSE HTTP client: auth handshake, politeness, retries, paging, hostile-server guards.

One request = pacer slot (this process) -> host budget slot -> token -> send -> classify. Every
failure becomes a FetchError whose outcome key is looked up in `failures.OUTCOMES`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from etl import api, tls
from etl.budget import CURRENT_WORK, RETRYING, STARTED_AT, HostBudget, ProcessPacer, RateChange, StrainDetector
from etl.events import RateChanged, Request, Retry, emit
from etl.failures import FailureClass, FetchError, RetryPolicy, status_outcome
from etl.paging import Paginator
from etl.payloads import BodyCheck, check_prove_body, parse_json_body
from etl.wasm_auth import TokenScheme

if TYPE_CHECKING:
    from etl.settings import Settings


# How soon a request waiting for its budget slot notices a stop (see StopWatcher).
STOP_POLL_S = 0.2


@dataclass
class _FreshRefusals:
    count: int = 0


class StopRequested(Exception):
    """The run is being interrupted: start no new request."""


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)


class StopWatcher:
    """The run's stop flag, looked at by one task every STOP_POLL_S. The budget's waits for a start sleep on
    futures it wakes at a stop: a request still waiting for its slot is dropped within STOP_POLL_S (it is not
    in flight yet) rather than waiting out the queue to be sent (at 5 req/s, ten seconds of queue after a
    Ctrl-C). One watcher instead of each waiting request waking every STOP_POLL_S to look at the flag itself:
    with five waiting in each of five processes, that was 125 wake-ups a second."""

    def __init__(self, stop_check: Callable[[], bool] | None) -> None:
        self._stop_check = stop_check
        self.stopped = False
        self._sleepers: set[asyncio.Future[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._stop_check is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def check(self) -> None:
        """Raise StopRequested if a stop has been requested, looking at the flag itself (not waiting for the
        watcher's next look): before a request starts."""
        if self.stopped or (self._stop_check is not None and self._stop_check()):
            raise StopRequested()

    async def _watch(self) -> None:
        assert self._stop_check is not None
        while not self._stop_check():
            await asyncio.sleep(STOP_POLL_S)
        self.stopped = True
        for sleeper in self._sleepers:
            _wake(sleeper)

    async def sleep(self, seconds: float) -> None:
        """asyncio.sleep (it always yields), ended early by a stop, which it raises as StopRequested."""
        if self.stopped:
            raise StopRequested()
        loop = asyncio.get_running_loop()
        sleeper = loop.create_future()
        timer = loop.call_later(max(seconds, 0.0), _wake, sleeper)
        self._sleepers.add(sleeper)
        try:
            await sleeper
        finally:
            timer.cancel()
            self._sleepers.discard(sleeper)
        if self.stopped:
            raise StopRequested()


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    throttle_events: int = 0
    auth_calls: int = 0


@dataclass(frozen=True)
class ClientConfig:
    """The settings the client uses; each field is the `Settings` field of the same name."""

    base_url: str
    output: Path = Path("output")  # where the run keeps the TLS intermediates it fetched
    tls_verify: bool = True
    ca_bundle: Path | None = None
    timeout: float = 30.0
    concurrency: int = 5
    pacing: float = 0.2
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 600.0
    max_body_mb: float = 32.0
    page_size: int = 500
    max_pages: int = 200

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientConfig:
        return cls(**{item.name: getattr(settings, item.name) for item in fields(cls)})


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header as seconds from `now`: delay-seconds or an HTTP date (RFC 9110); None when
    absent or unreadable. A date in the past is 0."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class NepseClient:
    """Use as `async with NepseClient(...) as client:` inside one event loop."""

    def __init__(self, config: ClientConfig, budget: HostBudget, *, stop_check: Callable[[], bool] | None = None,
                 on_rate_change: Callable[[RateChange], None] | None = None, seed: int | None = None,
                 token_scheme: TokenScheme | None = None) -> None:
        self.config = config
        self.use_token_scheme(token_scheme or TokenScheme(None))
        self.base_url = config.base_url
        self.host = urlsplit(config.base_url).netloc
        self.page_size = config.page_size
        self.max_pages = config.max_pages
        self.budget = budget
        self.pacer = ProcessPacer(config.concurrency, config.pacing)
        self.policy = RetryPolicy(config.max_attempts, config.backoff_base, config.backoff_cap)
        self.stats = ClientStats()
        self._stop_watcher = StopWatcher(stop_check)
        self._on_rate_change = on_rate_change or _log_rate_change
        self._strain = StrainDetector()
        self._rng = random.Random(seed)
        self._max_body = int(config.max_body_mb * 1024 * 1024)
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_time = 0.0
        self._token_life = api.TOKEN_REFRESH_AFTER_S  # shortened when the server refuses younger tokens
        self._expected_wait = 0.0  # how long the last request waited for its budget slot
        self._renewing = False
        self._renewed = asyncio.Event()  # set whenever no renewal is in flight
        self._renewed.set()

    async def __aenter__(self) -> NepseClient:
        connector = aiohttp.TCPConnector(limit=self.config.concurrency + 1, ssl=tls.client_context(self.config))
        writes = aiohttp.TraceConfig()
        writes.on_request_headers_sent.append(self._writing)
        self._session = aiohttp.ClientSession(
            headers=api.browser_headers(self.base_url),
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            trace_configs=[writes],
        )
        # aiohttp silently resends an idempotent request once when the server drops the connection.
        # That resend would bypass the host budget and our retry table, so turn it off (no public switch).
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        self._stop_watcher.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop_watcher.close()
        if self._session is not None:
            await self._session.close()

    async def _writing(self, *_: object) -> None:
        """aiohttp is about to write a request (its headers, then at once the rest): tell the budget."""
        self.budget.sent(STARTED_AT.get())
        STARTED_AT.set(None)

    # ---- public calls

    async def get_json(self, path: str, params: dict[str, Any] | None = None,
                       validate: BodyCheck | None = None) -> Any:
        """GET an authenticated /api/nots path, retrying as OUTCOMES says; returns what `validate`
        returns (the decoded body when there is no check)."""
        refusals = _FreshRefusals()
        body = await self._with_retries(lambda: self._request("GET", path, params=params, validate=validate,
                                                              refusals=refusals))
        work = CURRENT_WORK.get()
        if work is not None:
            work.request_done()
        return body

    async def get_pages(self, path: str, params: dict[str, Any], paginator: Paginator,
                        convert: Callable[[list[Any]], Any] | None = None) -> list[Any]:
        """Every row of a paged endpoint, page by page as the paginator asks (each page retried alone). With
        `convert`, each page's rows are handed to it as the page arrives and the list holds what it returned,
        one item a page (the decoded JSON of a page need not outlive it)."""
        rows: list[Any] = []
        while (request := paginator.next_request()) is not None:
            content = await self.get_json(path, {**params, **request}, validate=paginator.update)
            if convert is None:
                rows.extend(content)
            else:
                rows.append(convert(content))
            work = CURRENT_WORK.get()
            if work is not None and paginator.pages_left is not None:
                work.pages_left(paginator.pages_left)  # the plan's guess, corrected by the server's count
        return rows

    async def get_asset(self, path: str, max_bytes: int) -> bytes:
        """GET a static file of the site (no auth), at most `max_bytes`, retrying as OUTCOMES says."""
        async def once() -> bytes:
            body = await self._send_paced("GET", path, None, None)
            if len(body) > max_bytes:
                raise FetchError("body_too_large", f"{path} is over {max_bytes:,} bytes")
            return body

        return await self._with_retries(once)

    # ---- retries and auth

    def use_token_scheme(self, scheme: TokenScheme) -> None:
        """Clean tokens with the site's css.wasm, or the built-in formula (etl/wasm_auth.py)."""
        self.junk_positions = scheme.positions()
        self._auth_hint = scheme.auth_hint

    async def _with_retries(self, attempt_once: Callable[[], Any]) -> Any:
        attempt = 1
        while True:
            retrying = RETRYING.set(attempt > 1)  # a retry goes before this type's fresh requests
            try:
                result = await attempt_once()
                self._strain.record(None)
                return result
            except FetchError as error:
                error.attempts = attempt
                self._note_failure(error)
                if not self.policy.should_retry(error, attempt):
                    if error.refused_auth and self._auth_hint:
                        error.detail = f"{error.detail} ({self._auth_hint})"
                    raise
                wait = self.policy.wait_seconds(error, attempt, self._rng)
                emit(Retry(reason=error.detail, attempt=attempt, wait=round(wait, 3)))
            finally:
                RETRYING.reset(retrying)
            self.stats.retries += 1
            attempt += 1
            await asyncio.sleep(wait)

    def _note_failure(self, error: FetchError) -> None:
        reason = self._strain.record(error.failure_class)
        if reason is not None:
            change = self.budget.throttle(reason)
            if change is not None:
                self.stats.throttle_events += 1
                self._on_rate_change(change)

    # ---- the token: taken once the budget slot is granted, just before sending

    def _token_stale(self, ahead: float = 0.0) -> bool:
        return self._token is None or time.monotonic() + ahead - self._token_time > self._token_life

    async def _slot(self) -> float | None:
        """Wait for a budget slot; returns when it started (STARTED_AT, for a slot taken in a task of its own)."""
        change = await self.budget.acquire(self._stop_watcher.sleep)
        if change is not None:
            self._on_rate_change(change)
        return STARTED_AT.get()

    async def _authorised_slot(self) -> tuple[str, bool]:
        """Wait for the budget slot, then take the token; (token, proven for this very request).

        A token that will be stale when the slot comes (or turns out stale when it does) is renewed
        in a slot of its own with the request's slot reserved right behind it, so that no wait falls
        between the two: a long queue for the budget cannot outlive the token. While another request renews
        it, this one waits for that token before it asks for a slot: a slot taken meanwhile would go unused."""
        while self._renewing:
            await self._renewed.wait()
        if not self._token_stale(self._expected_wait):
            asked = time.monotonic()
            await self._slot()
            self._expected_wait = time.monotonic() - asked
            if not self._token_stale():
                return str(self._token), False
            if self._renewing:  # another request is renewing it: wait for that token, then for a slot
                await self._renewed.wait()
                await self._slot()
                if not self._token_stale():
                    return str(self._token), False
            # stale after all: this slot goes unused, the renewal and the request take a pair
        self._renewing = True
        self._renewed.clear()
        first, second = asyncio.ensure_future(self._slot()), asyncio.ensure_future(self._slot())
        proving: asyncio.Future[str] | None = None
        try:
            STARTED_AT.set(await first)  # the renewal goes out in the first slot (its task copies this)
            proving = asyncio.ensure_future(self._prove())
            STARTED_AT.set(await second)  # and the request in the second
            if not proving.done():  # answered after the request's slot: sending then would break the budget
                await proving
                await self._slot()
            return await proving, True
        finally:
            for pending in (second, proving):
                if pending is not None and not pending.done():
                    pending.cancel()
                elif pending is not None and not pending.cancelled():
                    pending.exception()  # a stop that ended it too is this call's, not an unretrieved error
            self._renewing = False
            self._renewed.set()

    async def _prove(self) -> str:
        """The auth handshake, sent in a budget slot the caller holds."""
        self.stats.auth_calls += 1
        body = parse_json_body(await self._send_logged("GET", api.PROVE_PATH, None, None))
        self._token = api.access_token(check_prove_body(body, self.junk_positions), self.junk_positions)
        self._token_time = time.monotonic()
        return self._token

    def _auth_failed(self, error: FetchError, token: str, proven_now: bool, sent_at: float,
                     refusals: _FreshRefusals) -> FetchError:
        """A refused token is dropped (only that one: another coroutine may hold a fresher one) and
        teaches how long tokens live; refused twice just after proving, it is an auth failure."""
        if self._token == token:
            self._token = None
        if not proven_now:
            self._token_life = max(0.1, min(self._token_life, (sent_at - self._token_time) / 2))
            return error
        refusals.count += 1
        if refusals.count < 2:
            return error
        return FetchError("auth_rejected", f"{error.detail} on a token proven just before", status=error.status)

    # ---- one request

    async def _request(self, method: str, path: str, *, params: dict[str, Any] | None,
                       validate: BodyCheck | None, refusals: _FreshRefusals) -> Any:
        """One authenticated start; `refusals` is the call's, kept across its retries."""
        self._stop_watcher.check()
        assert self._session is not None, "use NepseClient as an async context manager"
        with self.budget.asking():
            async with self.pacer:
                token, proven_now = await self._authorised_slot()
                started = time.monotonic()
                try:
                    body = await self._send_logged(method, path, params, api.auth_header(token))
                except FetchError as error:
                    if error.failure_class is FailureClass.AUTH:
                        raise self._auth_failed(error, token, proven_now, started, refusals) from None
                    raise
        data = parse_json_body(body)
        return data if validate is None else validate(data)

    async def _send_paced(self, method: str, path: str, params: dict[str, Any] | None,
                          headers: dict[str, str] | None) -> bytes:
        """One unauthenticated start (a static file of the site)."""
        self._stop_watcher.check()
        assert self._session is not None, "use NepseClient as an async context manager"
        with self.budget.asking():
            async with self.pacer:
                await self._slot()
                return await self._send_logged(method, path, params, headers)

    async def _send_logged(self, method: str, path: str, params: dict[str, Any] | None,
                           headers: dict[str, str] | None) -> bytes:
        """Send in a budget slot the caller holds: counted, and recorded as a request event."""
        self.stats.requests += 1
        started, clock = time.time(), time.monotonic()
        try:
            body = await self._send(method, path, params, headers)
        except FetchError as error:
            _log_request(method, path, params, started, time.monotonic() - clock, error.outcome, 0)
            raise
        _log_request(method, path, params, started, time.monotonic() - clock, "ok", len(body))
        return body

    async def _send(self, method: str, path: str, params: dict[str, Any] | None,
                    headers: dict[str, str] | None) -> bytes:
        assert self._session is not None
        url = self.base_url + path
        try:
            async with self._session.request(method, url, params=params, headers=headers) as response:
                if response.status >= 400:
                    raise await self._status_error(response)
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
            raise FetchError("timeout", f"no answer within {self.config.timeout:g}s") from None

    async def _status_error(self, response: aiohttp.ClientResponse) -> FetchError:
        text = (await response.content.read(2048)).decode("utf-8", "replace")
        header = response.headers.get("Retry-After")
        retry_after = retry_after_seconds(header)
        if retry_after is not None and retry_after > self.config.max_retry_after:
            return FetchError("retry_after_too_long", f"HTTP {response.status} asking to wait {retry_after:,.0f} s "
                              f"(Retry-After: {header}), longer than --max-retry-after "
                              f"{self.config.max_retry_after:g} s", status=response.status, retry_after=retry_after)
        return FetchError(status_outcome(response.status, text), f"HTTP {response.status}", status=response.status,
                          retry_after=retry_after)

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self._max_body:
            raise FetchError("body_too_large", f"response of {declared:,} bytes is over the "
                             f"{self.config.max_body_mb:g} MB cap (NEPSE_MAX_BODY_MB)")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > self._max_body:
                raise FetchError("body_too_large", f"response over the {self.config.max_body_mb:g} MB cap "
                                 "(NEPSE_MAX_BODY_MB)")
            chunks.append(chunk)
        return b"".join(chunks)


def _log_request(method: str, path: str, params: dict[str, Any] | None, started: float, seconds: float,
                 outcome: str, size: int) -> None:
    """One request event per request start (the HTML report draws them); wall-clock start, for every process."""
    emit(Request(method=method, path=path, params=params or {}, started=round(started, 3), seconds=round(seconds, 3),
                 outcome=outcome, bytes=size))


def _log_rate_change(change: RateChange) -> None:
    direction = "halved" if change.new_rate < change.old_rate else "raised"
    emit(RateChanged(rate=round(change.new_rate, 3), old_rate=round(change.old_rate, 3),
                     reason=f"host rate {direction}: {change.reason}"))
