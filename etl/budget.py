"""The politeness budget: per-process pacing plus one host-wide rate shared by every process.

The host budget lives in a small shared-memory array (no round trip to a manager per
request): a FIFO reservation clock for fairness, the time of the last real start as a
hard guard, and the current adaptive rate. Every request start, auth calls included,
passes through `HostBudget.acquire`, so at most `rate` starts fall in any one-second
window however many processes run, and a process that finishes simply stops asking,
leaving the whole budget to the others.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

# A start interval a little longer than 1/rate: a request reaches the server a few ms after
# we let it go, and that jitter must not squeeze R + 1 arrivals into one second.
SPACING_MARGIN = 1.03
# Strain (failures.STRAIN_WEIGHTS) in a process's last BURST_WINDOW outcomes that counts as throttling.
BURST_WINDOW = 20
BURST_THRESHOLD = 8
# Never halve twice within this many seconds: one bad moment is one signal.
MIN_SECONDS_BETWEEN_HALVINGS = 2.0

_NEXT_SLOT, _LAST_START, _RATE, _LAST_THROTTLE, _LAST_CHANGE, _THROTTLES, _MAX_RATE, _FLOOR = range(8)
_FIELDS = 8


@dataclass(frozen=True)
class RateChange:
    old_rate: float
    new_rate: float
    reason: str


class HostBudget:
    """Host-wide request-start budget in shared memory; create in the parent, pass to children."""

    def __init__(self, max_rps: float, floor_rps: float, recover_after_s: float,
                 ctx: BaseContext | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        import multiprocessing

        context = ctx or multiprocessing.get_context()
        self._shared: Any = context.Array("d", _FIELDS, lock=True)
        self.recover_after_s = recover_after_s
        # Every process must read the same clock: the default, CLOCK_MONOTONIC, is system-wide.
        # Tests pass a virtual one.
        self._clock = clock
        with self._shared.get_lock():
            self._shared[_RATE] = max_rps
            self._shared[_MAX_RATE] = max_rps
            self._shared[_FLOOR] = min(floor_rps, max_rps)
            self._shared[_NEXT_SLOT] = 0.0
            self._shared[_LAST_START] = -1e9
            self._shared[_LAST_THROTTLE] = -1e9
            self._shared[_LAST_CHANGE] = -1e9

    @property
    def rate(self) -> float:
        return float(self._shared[_RATE])

    @property
    def max_rate(self) -> float:
        return float(self._shared[_MAX_RATE])

    @property
    def throttle_events(self) -> int:
        return int(self._shared[_THROTTLES])

    def _interval(self) -> float:
        return SPACING_MARGIN / self._shared[_RATE]

    def _reserve(self) -> float:
        """Take the next FIFO slot; returns its monotonic time."""
        with self._shared.get_lock():
            now = self._clock()
            slot = max(now, self._shared[_NEXT_SLOT])
            self._shared[_NEXT_SLOT] = slot + self._interval()
            return slot

    def _try_start(self) -> float:
        """Record a start now if the hard guard allows it: 0.0, else seconds to wait."""
        with self._shared.get_lock():
            now = self._clock()
            earliest = self._shared[_LAST_START] + self._interval()
            if now >= earliest:
                self._shared[_LAST_START] = now
                return 0.0
            return earliest - now

    async def acquire(self) -> RateChange | None:
        """Wait for this process's turn to start one request. Returns a rate recovery, if any."""
        change = self._maybe_recover()
        slot = self._reserve()
        delay = slot - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)
        while (wait := self._try_start()) > 0:
            await asyncio.sleep(wait)
        return change

    def throttle(self, reason: str) -> RateChange | None:
        """Halve the host rate (not below the floor). Returns the change, or None if it was
        already halved a moment ago or is at the floor."""
        with self._shared.get_lock():
            now = self._clock()
            if now - self._shared[_LAST_THROTTLE] < MIN_SECONDS_BETWEEN_HALVINGS:
                return None
            self._shared[_LAST_THROTTLE] = now
            self._shared[_LAST_CHANGE] = now
            self._shared[_THROTTLES] += 1
            old = self._shared[_RATE]
            new = max(self._shared[_FLOOR], old / 2)
            self._shared[_RATE] = new
        return RateChange(old, new, reason) if new != old else None

    def _maybe_recover(self) -> RateChange | None:
        """After a quiet period, step the rate back up by a quarter of the budget."""
        shared = self._shared
        if shared[_RATE] >= shared[_MAX_RATE]:
            return None
        with shared.get_lock():
            now = self._clock()
            quiet = now - shared[_LAST_THROTTLE] >= self.recover_after_s
            step_due = now - shared[_LAST_CHANGE] >= self.recover_after_s / 2
            old = shared[_RATE]
            if not (quiet and step_due and old < shared[_MAX_RATE]):
                return None
            new = min(shared[_MAX_RATE], old + shared[_MAX_RATE] / 4)
            shared[_RATE] = new
            shared[_LAST_CHANGE] = now
        return RateChange(old, new, "quiet period")


class ProcessPacer:
    """This process's own limits: `concurrency` requests in flight, `pacing` s between starts."""

    def __init__(self, concurrency: int, pacing_s: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._pacing_s = pacing_s
        self._next_start = 0.0

    async def __aenter__(self) -> ProcessPacer:
        await self._slots.acquire()
        now = time.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + self._pacing_s
        if start > now:
            await asyncio.sleep(start - now)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._slots.release()


class StrainDetector:
    """Spots a burst of failures in this process's recent outcomes."""

    def __init__(self, window: int = BURST_WINDOW, threshold: int = BURST_THRESHOLD) -> None:
        self._recent: deque[int] = deque(maxlen=window)
        self._threshold = threshold

    def record(self, strain: int) -> bool:
        """Record one outcome's strain (0 for a success); True when the recent outcomes cross the
        threshold (and then it starts afresh)."""
        self._recent.append(strain)
        if sum(self._recent) >= self._threshold:
            self._recent.clear()
            return True
        return False
