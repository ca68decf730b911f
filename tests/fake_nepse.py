"""A tiny stand-in for NEPSE's API on loopback, for client-level tests: the auth handshake, whatever routes
a test adds, and a record of every request. (The full simulator, `etl.simulator`, serves real-looking data.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp import web

from etl import api
from etl.budget import HostBudget
from etl.client import ClientConfig, NepseClient

CLEAN = "t" * 150  # the token every /prove serves, once its junk characters are removed
SALT = 12345


def handler(make: Callable[[web.Request], web.StreamResponse]):
    """A route answering with whatever `make` builds for each request."""
    async def handle(request: web.Request) -> web.StreamResponse:
        return make(request)

    return handle


def _raw_token() -> str:
    raw = list(CLEAN)
    for position in api.junk_positions(SALT):
        raw.insert(position, "!")
    return "".join(raw)


class Server:
    """A tiny misbehaving server; `seen` records (path, time) of every request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []
        self.refresh_token: str | None = _raw_token()  # None: /prove leaves the field out
        self.app = web.Application(middlewares=[self._record])
        self.app.router.add_get(api.PROVE_PATH, self._prove)

    @web.middleware
    async def _record(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        self.seen.append((request.path, time.monotonic()))
        return await handler(request)

    async def _prove(self, request: web.Request) -> web.Response:
        body = {"accessToken": _raw_token(), "refreshToken": self.refresh_token, "salt1": SALT, "salt2": SALT,
                "salt3": 1, "salt4": 2, "salt5": 3, "serverTime": 0}
        return web.json_response({key: value for key, value in body.items() if value is not None})

    def count(self, path: str) -> int:
        return sum(1 for seen_path, _ in self.seen if seen_path == path)


async def _call(server: Server, action: Callable[[NepseClient], Awaitable], budget: HostBudget,
                stop_check: Callable[[], bool] | None, **overrides):
    runner = web.AppRunner(server.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config = replace(ClientConfig(base_url=f"http://127.0.0.1:{port}", pacing=0.0, backoff_base=0.01,
                                  backoff_cap=0.05, max_attempts=3), **overrides)
    try:
        async with NepseClient(config, budget, seed=1, stop_check=stop_check) as client:
            return await action(client)
    finally:
        await runner.cleanup()


def run_client(server: Server, action: Callable[[NepseClient], Awaitable], budget: HostBudget,
               stop_check: Callable[[], bool] | None = None, **overrides):
    """`action` on a client of `server` (ClientConfig fields overridden by `overrides`, asked `stop_check`
    whether a stop was requested), served on loopback for the length of the call."""
    return asyncio.run(_call(server, action, budget, stop_check, **overrides))
