"""Request statistics the tests and benchmarks read back from /_sim/stats."""

from __future__ import annotations

import bisect
import time
from collections import Counter

WINDOW_S = 1.0


def max_starts_in_window(starts: list[float], window_s: float = WINDOW_S) -> int:
    """Most start times inside any half-open window [t, t + window_s) (two-pointer sweep)."""
    ordered = sorted(starts)
    best = 0
    left = 0
    for right, start in enumerate(ordered):
        while start - ordered[left] >= window_s:
            left += 1
        best = max(best, right - left + 1)
    return best


class SimStats:
    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Forget everything counted so far; requests still running keep counting as in flight."""
        self.starts: list[float] = []
        self.max_in_flight = self.in_flight
        self.data_requests = 0
        self.auth_requests = 0
        self.status_counts: Counter[str] = Counter()
        self.per_path_kind: Counter[str] = Counter()
        self.rows_served: Counter[str] = Counter()  # rows of paged histories, by path kind

    def request_started(self, path: str, path_kind: str, arrived: float | None = None) -> None:
        """Count a request that `arrived` (time.monotonic(); default now). The starts stay in time order: an
        arrival stamped by the kernel can be earlier than one counted before it."""
        bisect.insort(self.starts, time.monotonic() if arrived is None else arrived)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.per_path_kind[path_kind] += 1
        if path.startswith("/api/nots/"):
            self.data_requests += 1
        elif path.startswith("/api/authenticate/"):
            self.auth_requests += 1

    def request_finished(self, outcome: str) -> None:
        """`outcome` is the status code as text, or "drop" for a dropped connection."""
        self.in_flight -= 1
        self.status_counts[outcome] += 1

    def snapshot(self) -> dict:
        first = self.starts[0] if self.starts else None
        return {
            "requests": len(self.starts),
            "data_requests": self.data_requests,
            "auth_requests": self.auth_requests,
            "max_starts_per_1s": max_starts_in_window(self.starts),
            "max_in_flight": self.max_in_flight,
            "in_flight": self.in_flight,
            "status_counts": dict(self.status_counts),
            "per_path_kind": dict(self.per_path_kind),
            "rows_served": dict(self.rows_served),
            "first_start": first,
            "last_start": self.starts[-1] if self.starts else None,
            "starts": [start - first for start in self.starts] if first is not None else [],
        }
