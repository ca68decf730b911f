"""The politeness budget: per-process pacing, shares by remaining work, and one host-wide rate shared by
every process of every run on this machine.

Three layers, each cheap enough for every request start:
- `HostLedger`: a small memory-mapped file per API host in the state directory, locked with `flock`
  for a few microseconds per start (measured ~1.7 us, less than a multiprocessing lock). It holds the
  host's FIFO reservation clock, the times of the latest real starts (a hard guard: never more starts in
  a window than the budget allows) and the live runs with their current rates; the host is paced at the
  smallest of them. A killed run's entry expires: its process is gone or its heartbeat is stale.
- `HostBudget`: one run's state in shared memory (its adaptive rate and throttle history, and each
  member process's remaining work), created in the parent and passed to the children.
- Shares: a member (one type's process) may start a request once its share of the host rate allows
  it, its share being its remaining requests over the total of the members that have a request
  waiting or in flight, so that every type finishes about together, and a member with nothing to send
  (finished, sleeping off a backoff) leaves its share to the others at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fcntl
import heapq
import itertools
import math
import mmap
import os
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from etl.failures import STRAIN_CLASSES, FailureClass

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]

# A start interval a little longer than 1/rate: a request reaches the server a few ms after
# we let it go, and that jitter must not squeeze R + 1 arrivals into one second. The hard guard allows R
# starts in any SPACING_MARGIN seconds, so R + 1 arrivals within one second at the server need one request
# delayed by 30 ms more than another on its way there (measured on loopback, whole market, five processes, a
# load average of 4 to 5: the kernel receives a request a median 0.4 ms after its start, 99 % within 1.4-4 ms,
# the slowest 14-61 ms after; a start written more than RESTAMP_AFTER_S late moves to when it was written, see
# HostBudget.sent). A wider margin costs utilization one for one.
SPACING_MARGIN = 1.03
# Failures in a process's last BURST_WINDOW outcomes that count as the server struggling: THROTTLE_THRESHOLD
# 429s, or BURST_THRESHOLD of any of failures.STRAIN_CLASSES. Not two 429s: at 5 % mixed faults (one answer
# in 140 a 429, at random) two 429s among 20 outcomes came about once a run of 2,800 requests by chance, and
# each halving cost ~15 s at half or three quarters of the rate (0.876 of the budget against ~0.95).
BURST_WINDOW = 20
BURST_THRESHOLD = 8
THROTTLE_THRESHOLD = 3
# Never halve twice within this many seconds: one bad moment is one signal.
MIN_SECONDS_BETWEEN_HALVINGS = 2.0
# How far a member late for its share may catch up (it still goes no faster than the host's own spacing).
SHARE_CREDIT_S = 0.25
# Member processes (data types) one run can weigh against each other.
MAX_MEMBERS = 16
# A request written this long after its start moves its start in the host's ring to when it was written
# (see HostBudget.sent); how far back in the ring its start is looked for.
RESTAMP_AFTER_S = 0.002
RESTAMP_SEARCH = 256

_RATE, _LAST_THROTTLE, _LAST_CHANGE, _THROTTLES, _MAX_RATE, _FLOOR = range(6)
_WEIGHTS = 6  # MAX_MEMBERS remaining-work weights follow
_ASKING = _WEIGHTS + MAX_MEMBERS  # then how many requests each member has waiting for a start or in flight
_FIELDS = _ASKING + MAX_MEMBERS


@dataclass(frozen=True)
class RateChange:
    old_rate: float
    new_rate: float
    reason: str


# ---- the per-host file shared by every run on this machine

HEARTBEAT_S = 1.0
STALE_AFTER_S = 10.0  # a run whose heartbeat is older than this is gone, whatever its pid says
MAX_RUNS = 64
_VERSION = 2.0
# header doubles: version, boot epoch (wall time - monotonic, to spot a reboot), next slot, where the next
# start goes in the ring, min rate
_HEADER = struct.Struct("<5d")
_ENTRY = struct.Struct("<4d")  # pid, heartbeat (wall time), rate, 0
_ENTRIES_AT = 64
# The latest starts, a ring of times: the hard guard counts them. A budget above RECENT_STARTS req/s is
# held to RECENT_STARTS starts per RECENT_STARTS / rate seconds instead of per second.
RECENT_STARTS = 4096
_START = struct.Struct("<d")
_STARTS_AT = 4096
_FILE_SIZE = _STARTS_AT + RECENT_STARTS * _START.size
_NEVER = -1e9


class StateDirError(OSError):
    """The budget's state directory cannot be used."""


def default_state_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "nepse-etl"


def ledger_path(state_dir: Path, base_url: str) -> Path:
    """One file per API host: its name and port from the user's --base-url, made safe for a file name."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    safe = re.sub(r"[^a-z0-9.-]", "_", f"{parts.hostname or 'host'}_{port}".lower())[:120]
    return state_dir / f"budget-{safe}.bin"


def _boot_epoch() -> float:
    return time.time() - time.monotonic()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HostLedger:
    """The host's reservation clock and live runs, in a locked, memory-mapped file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pid = -1
        self._fd = -1
        self._map: mmap.mmap | None = None
        # flock excludes other open files, not other threads using this one (the parent's heartbeat).
        self._threads = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def _mapped(self) -> mmap.mmap:
        # Reopen in every process: a flock belongs to the open file, which a forked child would share.
        if self._map is None or self._pid != os.getpid():
            self._threads = threading.Lock()  # a forked child must not inherit a lock its parent's thread held
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                if os.fstat(fd).st_size < _FILE_SIZE:
                    os.ftruncate(fd, _FILE_SIZE)
                self._map = mmap.mmap(fd, _FILE_SIZE)
            except OSError as exc:
                raise StateDirError(exc.errno, f"cannot use the budget state file {self.path} "
                                    f"({exc.strerror}); set NEPSE_STATE_DIR to a writable directory") from None
            self._fd, self._pid = fd, os.getpid()
            with self._locked() as mapped:
                self._check_header(mapped)
        return self._map

    @contextlib.contextmanager
    def _locked(self) -> Iterator[mmap.mmap]:
        mapped = self._mapped()
        with self._threads:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield mapped
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    @staticmethod
    def _check_header(mapped: mmap.mmap) -> None:
        version, boot, *_ = _HEADER.unpack_from(mapped, 0)
        # Times are CLOCK_MONOTONIC, which restarts at boot: a file from before a reboot starts afresh.
        if version != _VERSION or abs(boot - _boot_epoch()) > 5.0:
            mapped[:] = bytes(_FILE_SIZE)
            _HEADER.pack_into(mapped, 0, _VERSION, _boot_epoch(), 0.0, 0.0, 0.0)
            struct.pack_into(f"<{RECENT_STARTS}d", mapped, _STARTS_AT, *[_NEVER] * RECENT_STARTS)

    def _entries(self, mapped: mmap.mmap) -> list[tuple[float, float, float, float]]:
        return [_ENTRY.unpack_from(mapped, _ENTRIES_AT + i * _ENTRY.size) for i in range(MAX_RUNS)]

    def _refresh_min_rate(self, mapped: mmap.mmap, prune_dead: bool) -> None:
        now = time.time()
        rates = []
        for index, (pid, heartbeat, rate, _) in enumerate(self._entries(mapped)):
            if not pid:
                continue
            if now - heartbeat > STALE_AFTER_S or (prune_dead and not _pid_alive(int(pid))):
                _ENTRY.pack_into(mapped, _ENTRIES_AT + index * _ENTRY.size, 0.0, 0.0, 0.0, 0.0)
            else:
                rates.append(rate)
        header = list(_HEADER.unpack_from(mapped, 0))
        header[4] = min(rates, default=0.0)
        _HEADER.pack_into(mapped, 0, *header)

    def join(self, rate: float) -> int:
        """Enter this run (this process's pid) with its rate; returns its entry."""
        with self._locked() as mapped:
            self._refresh_min_rate(mapped, prune_dead=True)
            free = next((i for i, entry in enumerate(self._entries(mapped)) if not entry[0]), None)
            if free is None:
                raise StateDirError(0, f"more than {MAX_RUNS} runs share {self.path}; wait for some to end")
            _ENTRY.pack_into(mapped, _ENTRIES_AT + free * _ENTRY.size, float(os.getpid()), time.time(), rate, 0.0)
            self._refresh_min_rate(mapped, prune_dead=False)
        return free

    def heartbeat(self, entry: int, rate: float) -> None:
        """Say this run is alive at `rate`; drop runs that are gone. Rejoins if a frozen spell lost the entry."""
        with self._locked() as mapped:
            offset = _ENTRIES_AT + entry * _ENTRY.size
            pid = _ENTRY.unpack_from(mapped, offset)[0]
            if pid in (0.0, float(os.getpid())):
                _ENTRY.pack_into(mapped, offset, float(os.getpid()), time.time(), rate, 0.0)
            self._refresh_min_rate(mapped, prune_dead=True)

    def leave(self, entry: int) -> None:
        with self._locked() as mapped:
            offset = _ENTRIES_AT + entry * _ENTRY.size
            if _ENTRY.unpack_from(mapped, offset)[0] == float(os.getpid()):
                _ENTRY.pack_into(mapped, offset, 0.0, 0.0, 0.0, 0.0)
            self._refresh_min_rate(mapped, prune_dead=False)

    def min_rate(self) -> float:
        """The smallest rate among the live runs (0 if none); read without the lock."""
        return float(_HEADER.unpack_from(self._mapped(), 0)[4])

    def reserve(self, now: float, interval: float) -> float:
        """Take the host's next FIFO slot; returns its time."""
        with self._locked() as mapped:
            version, boot, next_slot, ring, min_rate = _HEADER.unpack_from(mapped, 0)
            slot = max(now, next_slot)
            _HEADER.pack_into(mapped, 0, version, boot, slot + interval, ring, min_rate)
        return slot

    def try_start(self, now: float, count: int, window_s: float) -> float:
        """Record a start now unless `count` starts already fall within the last `window_s` seconds: 0.0,
        else the seconds until the oldest of them leaves the window."""
        count = max(1, min(count, RECENT_STARTS))
        with self._locked() as mapped:
            version, boot, next_slot, ring, min_rate = _HEADER.unpack_from(mapped, 0)
            position = int(ring) % RECENT_STARTS
            oldest = _START.unpack_from(mapped, _STARTS_AT + (position - count) % RECENT_STARTS * _START.size)[0]
            if now < oldest + window_s:
                return oldest + window_s - now
            _START.pack_into(mapped, _STARTS_AT + position * _START.size, now)
            _HEADER.pack_into(mapped, 0, version, boot, next_slot, (position + 1) % RECENT_STARTS, min_rate)
        return 0.0

    def restamp(self, started: float, sent: float) -> bool:
        """Move the start recorded at `started` to `sent` (later), keeping the ring in time order; False when it
        is no longer among the latest RESTAMP_SEARCH starts."""
        with self._locked() as mapped:
            end = int(_HEADER.unpack_from(mapped, 0)[3])

            def offset(back: int) -> int:
                return _STARTS_AT + (end - back) % RECENT_STARTS * _START.size

            back = next((back for back in range(1, RESTAMP_SEARCH + 1)
                         if _START.unpack_from(mapped, offset(back))[0] == started), None)
            if back is None:
                return False
            while back > 1 and (later := _START.unpack_from(mapped, offset(back - 1))[0]) < sent:
                _START.pack_into(mapped, offset(back), later)  # a start recorded after it, but earlier, goes before it
                back -= 1
            _START.pack_into(mapped, offset(back), sent)
        return True


# ---- shares by remaining work


def fair_share(weights: Sequence[float], member: int, cap: float = math.inf) -> float:
    """`member`'s fraction of the host rate: weights in proportion, none above `cap` (what a process can
    use at its own pacing), what a capped member cannot use going to the others."""
    pool = {index: weight for index, weight in enumerate(weights) if weight > 0}
    if member not in pool:
        return 1.0 if not pool else 0.0
    left = 1.0
    while pool:
        total = sum(pool.values())
        capped = [index for index, weight in pool.items() if left * weight / total > cap]
        if not capped:
            return left * pool[member] / total
        if member in capped:
            return cap
        for index in capped:
            left -= cap
            del pool[index]
    return 0.0


class HostBudget:
    """One run's view of the host budget. Create it in the parent (it joins the host's ledger there),
    pass it to the children, and call `member(index)` in each type's process."""

    def __init__(self, max_rps: float, floor_rps: float, recover_after_s: float,
                 ctx: BaseContext | None = None, *, state_file: Path, pacing_s: float = 0.0,
                 clock: Clock = time.monotonic) -> None:
        import multiprocessing

        context = ctx or multiprocessing.get_context()
        self._shared: Any = context.Array("d", _FIELDS, lock=True)
        self.recover_after_s = recover_after_s
        self._clock = clock
        self._member: int | None = None
        # What one process can use at its own pacing, as a fraction of the run's rate (for the shares).
        self._cap_rps = 1 / pacing_s if pacing_s > 0 else math.inf
        self._last_pass = -math.inf
        self._gate: asyncio.Lock | None = None
        with self._shared.get_lock():
            self._shared[_RATE] = max_rps
            self._shared[_MAX_RATE] = max_rps
            self._shared[_FLOOR] = min(floor_rps, max_rps)
            self._shared[_LAST_THROTTLE] = -1e9
            self._shared[_LAST_CHANGE] = -1e9
        self._ledger = HostLedger(state_file)
        self._entry = self._ledger.join(max_rps)
        self._heartbeat: threading.Thread | None = None
        self._closing = threading.Event()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_heartbeat=None, _closing=None, _gate=None)
        return state

    # ---- the run's life (parent)

    def __enter__(self) -> HostBudget:
        self._closing = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="budget-heartbeat", daemon=True)
        self._heartbeat.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _beat(self) -> None:
        assert self._closing is not None
        while not self._closing.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                self._ledger.heartbeat(self._entry, self.rate)

    def close(self) -> None:
        """Leave the host's ledger: other runs are no longer held to this run's rate."""
        if self._closing is not None:
            self._closing.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None
        with contextlib.suppress(OSError):
            self._ledger.leave(self._entry)

    # ---- rates

    @property
    def rate(self) -> float:
        return float(self._shared.get_obj()[_RATE])

    @property
    def max_rate(self) -> float:
        return float(self._shared.get_obj()[_MAX_RATE])

    @property
    def throttle_events(self) -> int:
        return int(self._shared.get_obj()[_THROTTLES])

    def host_rate(self) -> float:
        """This run's rate, or a slower one if another run on this machine is using the same host."""
        others = self._ledger.min_rate()
        return min(self.rate, others) if others > 0 else self.rate

    def _interval(self) -> float:
        return SPACING_MARGIN / self.host_rate()

    def _guard(self) -> tuple[int, float]:
        """The hard guard: at most this many starts in any window of this many seconds. R starts in
        SPACING_MARGIN seconds (a fractional budget rounds up: 2.5 req/s is 3 starts in 1.24 s), rather than
        one start per interval: a process woken a millisecond late for its slot (a busy CPU, the event loop's
        timer granularity) must not push every later start back by as much, which cost 2-5 % of the budget."""
        rate = self.host_rate()
        count = max(1, math.ceil(rate - 1e-9))
        return count, count * SPACING_MARGIN / rate

    # ---- members and their shares

    def member(self, index: int) -> HostBudget:
        """This budget as seen by member `index` (one type's process), with its own share gate."""
        if not 0 <= index < MAX_MEMBERS:
            raise ValueError(f"member index {index} outside 0..{MAX_MEMBERS - 1}")
        view = copy.copy(self)
        view._member, view._last_pass, view._gate = index, -math.inf, None
        view._heartbeat, view._closing = None, None
        return view

    def set_remaining(self, requests: float, member: int | None = None) -> None:
        """Publish how many requests a member still has to make (0: it is done)."""
        index = self._member if member is None else member
        if index is not None:
            self._shared.get_obj()[_WEIGHTS + index] = max(0.0, float(requests))

    def weights(self) -> list[float]:
        """Remaining requests of each member that has a request waiting or in flight (0 for the others)."""
        raw = self._shared.get_obj()
        return [float(raw[_WEIGHTS + index]) if raw[_ASKING + index] > 0 else 0.0 for index in range(MAX_MEMBERS)]

    def share(self) -> float:
        if self._member is None:
            return 1.0
        weights = self.weights()
        weights[self._member] = max(weights[self._member], 1.0)  # it is asking, whatever its estimate says
        return fair_share(weights, self._member, self._cap_rps / self.host_rate())

    async def _wait_for_share(self, sleep: Sleep) -> None:
        while True:
            now = self._clock()
            interval = self._interval()
            share = self.share()
            if share >= 0.999:
                return
            gap = interval / share
            due = self._last_pass + gap
            if now >= due:
                # On schedule without drift; a member woken late (a busy CPU) may catch up a little, never by
                # more than SHARE_CREDIT_S (the host's own clock still spaces every start).
                self._last_pass = max(due, now - max(gap, SHARE_CREDIT_S))
                return
            # Until it is due, looking again at least every SHARE_CREDIT_S: a share that grows meanwhile (another
            # member finishing) is taken up that late at most, and the credit above makes up for it. Each wake-up
            # costs ~0.1-0.25 ms of CPU; re-checking every interval woke a small member 7 times per start at 40 req/s.
            await sleep(min(due - now, max(interval, SHARE_CREDIT_S)))

    # ---- starting a request

    async def acquire(self, sleep: Sleep = asyncio.sleep) -> RateChange | None:
        """Wait for this process's turn to start one request. Returns a rate recovery, if any."""
        change = self._maybe_recover()
        if self._member is None:
            await self._start(sleep)
            return change
        if self._gate is None:
            self._gate = asyncio.Lock()
        with self.asking():
            async with self._gate:  # FIFO inside the type
                await self._wait_for_share(sleep)
            await self._start(sleep)
        return change

    @contextlib.contextmanager
    def asking(self) -> Iterator[None]:
        """Around a request, from asking for its start until its answer. A member whose requests are all in
        flight is one at its own concurrency, not one with nothing to send: it keeps its share meanwhile.
        Counted as waiting, such a member dropped out of the shares between its requests, the others took
        the whole rate, the host's queue grew, and its requests waited there (prices: ~100 ms a page with
        five in flight, 20 pages a second against a share of 23), so it finished seconds after the rest."""
        if self._member is None:
            yield
            return
        asking = self._shared.get_obj()
        asking[_ASKING + self._member] += 1  # only this process writes its own count
        try:
            yield
        finally:
            asking[_ASKING + self._member] -= 1

    async def _start(self, sleep: Sleep) -> None:
        """Take the host's next slot, wait for it, and start once the hard guard agrees (STARTED_AT says when)."""
        slot = self._ledger.reserve(self._clock(), self._interval())
        delay = slot - self._clock()
        if delay > 0:
            await sleep(delay)
        while (wait := self._ledger.try_start(now := self._clock(), *self._guard())) > 0:
            await sleep(wait)
        STARTED_AT.set(now)

    def sent(self, started: float | None) -> None:
        """The request that started at `started` is being written to the socket now. Written late, its start moves
        in the host's ring to now: the hard guard then holds what really goes out to R in any SPACING_MARGIN
        seconds. Between its start and its write a process can be descheduled, or run other work of its loop:
        measured at a load average of 5 on 2 cores, one request in 2,800 went out 61 ms after its start, past the
        30 ms the margin tolerates, and the simulator counted 11 in one second at 10 req/s."""
        if started is None:
            return
        now = self._clock()
        if now - started > RESTAMP_AFTER_S:
            with contextlib.suppress(OSError):
                self._ledger.restamp(started, now)

    # ---- throttling

    def throttle(self, reason: str) -> RateChange | None:
        """Halve the run's rate (not below the floor). Returns the change, or None if it was
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
        raw = self._shared.get_obj()
        if raw[_RATE] >= raw[_MAX_RATE]:
            return None
        shared = self._shared
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


# ---- remaining work, as a member process counts it


class ItemWork:
    """One company's requests: expected (corrected as pages arrive) and done."""

    def __init__(self, meter: WorkMeter, expected: int) -> None:
        self.meter = meter
        self.expected = expected
        self.done = 0

    @property
    def left(self) -> int:
        return max(self.expected - self.done, 1)  # at least the request in flight (or its retry)

    def request_done(self) -> None:
        self.done += 1
        self.meter.publish()

    def pages_left(self, pages: int) -> None:
        """The server has said how many pages are still to come: the rest of this company is known."""
        self.expected = self.done + pages
        self.meter.publish()


# The company a coroutine is fetching, so the client can count its requests without knowing the plan.
CURRENT_WORK: ContextVar[ItemWork | None] = ContextVar("current_work", default=None)


class WorkMeter:
    """A member's remaining requests: companies not started x their expected requests, plus what the
    companies in progress still need (a failed request stays counted until it succeeds)."""

    def __init__(self, budget: HostBudget, queued: int) -> None:
        self._budget = budget
        self.queued = queued
        self._active: list[ItemWork] = []

    @property
    def remaining(self) -> int:
        return self.queued + sum(item.left for item in self._active)

    def publish(self) -> None:
        self._budget.set_remaining(self.remaining)

    def start(self, expected: int) -> ItemWork:
        self.queued -= expected
        item = ItemWork(self, expected)
        self._active.append(item)
        CURRENT_WORK.set(item)
        self.publish()
        return item

    def finish(self, item: ItemWork) -> None:
        self._active.remove(item)
        CURRENT_WORK.set(None)
        self.publish()

    def close(self) -> None:
        self.queued = 0
        self._active.clear()
        self._budget.set_remaining(0)


# When the current task's latest start was granted (the time recorded in the host's ring), for HostBudget.sent.
STARTED_AT: ContextVar[float | None] = ContextVar("started_at", default=None)

# Set while a coroutine retries a failed request: its next start goes before this type's fresh requests.
RETRYING: ContextVar[bool] = ContextVar("retrying", default=False)


class ProcessPacer:
    """This process's own limits: `concurrency` requests in flight, `pacing` s between starts. Slots are
    handed out first come first served, except that a retry goes before fresh requests: a company
    waiting for its next attempt must not be what the run waits for at the end."""

    def __init__(self, concurrency: int, pacing_s: float) -> None:
        self._free = concurrency
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # heap of (fresh?, arrival, future)
        self._arrivals = itertools.count()
        self._pacing_s = pacing_s
        self._next_start = 0.0

    async def __aenter__(self) -> ProcessPacer:
        await self._take_slot(fresh=not RETRYING.get())
        now = time.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + self._pacing_s
        if start > now:
            await asyncio.sleep(start - now)
        return self

    async def _take_slot(self, fresh: bool) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (int(fresh), next(self._arrivals), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed a slot just as it was cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()


class StrainDetector:
    """Spots a burst of failures in this process's recent outcomes."""

    def __init__(self, window: int = BURST_WINDOW, threshold: int = BURST_THRESHOLD,
                 throttle_threshold: int = THROTTLE_THRESHOLD) -> None:
        self._recent: deque[FailureClass | None] = deque(maxlen=window)
        self._threshold = threshold
        self._throttle_threshold = throttle_threshold

    def record(self, failure: FailureClass | None) -> str | None:
        """Record one outcome (None for a success); the reason to slow down when the recent outcomes cross
        a threshold (and then it starts afresh), else None."""
        self._recent.append(failure)
        reason = None
        if sum(outcome is FailureClass.THROTTLED for outcome in self._recent) >= self._throttle_threshold:
            reason = "repeated HTTP 429"
        elif sum(outcome in STRAIN_CLASSES for outcome in self._recent) >= self._threshold:
            reason = "burst of failures"
        if reason is not None:
            self._recent.clear()
        return reason
