"""Seeded fault injection: the ways the real NEPSE API fails under load."""

from __future__ import annotations

import random

from aiohttp import web

from etl.simulator.config import SimConfig

NGINX_PAGE = """<html>
<head><title>{status} {reason}</title></head>
<body>
<center><h1>{status} {reason}</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


def nginx_error(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=NGINX_PAGE.format(status=status, reason=reason),
        content_type="text/html",
        headers=headers,
    )


def json_error(status: int, error: str, message: str, path: str) -> web.Response:
    body = {"status": status, "error": error, "message": message, "path": path}
    return web.json_response(body, status=status)


def format_seconds(seconds: float) -> str:
    return f"{seconds:g}"


class FaultInjector:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        fault_seed = config.fault_seed if config.fault_seed is not None else f"{config.seed}:faults"
        self.rng = random.Random(fault_seed)

    def happens(self, probability: float) -> bool:
        return probability > 0 and self.rng.random() < probability

    def delay_s(self) -> float:
        config = self.config
        delay = 0.0
        if config.latency_median_s > 0:
            delay += config.latency_median_s * self.rng.lognormvariate(0.0, config.latency_sigma)
        if self.happens(config.p_slow):
            delay += config.slow_s
        return delay

    def error_before_handling(self, path: str, security_id: int | None) -> web.Response | None:
        """A 502/429/500 instead of the real answer, or None to go on."""
        config = self.config
        if self.happens(config.p_502):
            return nginx_error(502, "Bad Gateway")
        if self.happens(config.p_429):
            return nginx_error(429, "Too Many Requests", {"Retry-After": format_seconds(config.retry_after_s)})
        if self.happens(config.p_500) or security_id in config.fail_ids:
            return json_error(500, "Internal Server Error", "Something went wrong", path)
        return None

    def spoil_body(self, response: web.Response) -> web.Response:
        """Occasionally turn a good 200 into an empty body or truncated JSON."""
        if response.status != 200 or not isinstance(response.body, bytes):
            return response
        if self.happens(self.config.p_empty_200):
            return web.Response(status=200, body=b"", content_type="application/json")
        if self.happens(self.config.p_malformed_json):
            body = response.body
            return web.Response(status=200, body=body[: len(body) // 2], content_type="application/json")
        return response

    def shorten_page(self, content: list[dict]) -> list[dict]:
        """Silently lose some rows of a page (the metadata is left claiming them)."""
        if not content or not self.happens(self.config.p_short_page):
            return content
        return content[: self.rng.randrange(len(content))]
