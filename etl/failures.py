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
    "auth_rejected": FailureClass.TERMINAL,  # refused again right after a fresh prove: re-proving will not help
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

# The failures a struggling server shows. A process halves the host rate when its recent outcomes hold
# enough of them (etl/budget.py StrainDetector): three 429s, or eight of either kind. A lone 429 is honoured
# for its own request (Retry-After) without slowing every other one.
STRAIN_CLASSES = frozenset({FailureClass.TRANSIENT, FailureClass.THROTTLED})


# What to tell the user, per cause: an outcome's own line, else its failure class's.
ADVICE_BY_CLASS: dict[FailureClass, str] = {
    FailureClass.TRANSIENT: "the server was struggling: re-run later, perhaps with a lower --max-rps",
    FailureClass.THROTTLED: "the server throttled us: re-run with a lower --max-rps",
    FailureClass.AUTH: "the server kept refusing our token: re-run; if it persists, check --base-url",
    FailureClass.TERMINAL: "re-running alone will not fix it: check --base-url and the symbol",
}
ADVICE: dict[str, str] = {
    "auth_rejected": "the server refused a token it had just issued: check that --base-url is NEPSE's API "
                     "(not a proxy that rewrites the Authorization header); re-running at once will not help",
    "body_too_large": "an answer was over the size cap: raise NEPSE_MAX_BODY_MB if such answers are expected",
    "too_many_pages": "an answer ran past --max-pages: raise --max-pages if the history really is that long",
    "tls_error": "TLS failed: pass --ca-bundle FILE, or --insecure to skip verification",
    "connection_error": "the host did not answer: check --base-url and the network; if the server is struggling, "
                        "re-run later with a lower --max-rps",
    "http_404": "the server does not know this path: check that --base-url is NEPSE's API host",
    "http_403": "the server forbids this endpoint (an nginx page): nothing to retry; check --base-url",
}


def advice_for(outcome: str) -> str:
    return ADVICE.get(outcome) or ADVICE_BY_CLASS[OUTCOMES.get(outcome, FailureClass.TERMINAL)]


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

    @property
    def refused_auth(self) -> bool:
        """The server refused our token, whether or not another try is worth it."""
        return self.failure_class is FailureClass.AUTH or self.outcome == "auth_rejected"

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
