"""Every way a request can go wrong, classified once.

`OUTCOMES` is the one table that maps what happened to what we do about it; the
client's retry loop and the host rate controller both read it and nothing else.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass


class FailureClass(enum.Enum):
    TRANSIENT = "transient"  # retry after a backoff
    THROTTLED = "throttled"  # retry after a backoff, and slow the whole host down
    AUTH = "auth"  # re-prove the token once, then retry
    TERMINAL = "terminal"  # no retry: record the failure and move on


OUTCOMES: dict[str, FailureClass] = {
    "http_400": FailureClass.TERMINAL,
    "http_401": FailureClass.AUTH,
    "http_403": FailureClass.TERMINAL,
    "http_404": FailureClass.TERMINAL,
    "http_429": FailureClass.THROTTLED,
    "http_4xx": FailureClass.TERMINAL,
    "http_5xx": FailureClass.TRANSIENT,
    "bad_token_500": FailureClass.AUTH,  # NEPSE answers a stale token with 500 "invalid JWE header"
    "disconnected": FailureClass.TRANSIENT,
    "connection_error": FailureClass.TRANSIENT,
    "timeout": FailureClass.TRANSIENT,
    "empty_body": FailureClass.TRANSIENT,
    "bad_json": FailureClass.TRANSIENT,
    "bad_shape": FailureClass.TRANSIENT,
    "inconsistent_page": FailureClass.TRANSIENT,
    "tls_error": FailureClass.TERMINAL,
    "body_too_large": FailureClass.TERMINAL,
    "too_many_pages": FailureClass.TERMINAL,
    "retry_after_too_long": FailureClass.TERMINAL,  # Retry-After beyond --max-retry-after
}

# How loudly each kind of failure says "the server is struggling". A process halves the host rate when
# its recent outcomes add up to the burst threshold (etl/budget.py): eight transient failures, or two
# 429s. A lone 429 is honoured for its own request (Retry-After) without slowing every other one.
STRAIN_WEIGHTS: dict[FailureClass, int] = {FailureClass.TRANSIENT: 1, FailureClass.THROTTLED: 4}


def status_outcome(status: int, body_text: str = "") -> str:
    """The OUTCOMES key for an HTTP error status."""
    if status == 500 and "JWE" in body_text:
        return "bad_token_500"
    specific = f"http_{status}"
    if specific in OUTCOMES:
        return specific
    return "http_5xx" if status >= 500 else "http_4xx"


class FetchError(Exception):
    """A request that did not produce usable data; `outcome` is a key of OUTCOMES."""

    def __init__(self, outcome: str, detail: str, *, status: int | None = None,
                 retry_after: float | None = None, attempts: int = 1) -> None:
        super().__init__(detail)
        if outcome not in OUTCOMES:
            raise KeyError(f"unclassified outcome {outcome!r}")
        self.outcome = outcome
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.attempts = attempts

    @property
    def failure_class(self) -> FailureClass:
        return OUTCOMES[self.outcome]

    def describe(self) -> str:
        """One line for the summary, e.g. 'HTTP 502 after 5 attempts'."""
        noun = "attempt" if self.attempts == 1 else "attempts"
        return f"{self.detail} after {self.attempts} {noun}"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    def should_retry(self, error: FetchError, attempt: int) -> bool:
        return error.failure_class is not FailureClass.TERMINAL and attempt < self.max_attempts

    def wait_seconds(self, error: FetchError, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter; never sooner than the server's Retry-After."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        wait = rng.uniform(0, ceiling)
        if error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return wait
