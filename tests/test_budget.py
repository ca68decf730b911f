"""The host budget holds across processes, is fair, and slows down and recovers on throttling."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import pytest

from etl.budget import HostBudget, ProcessPacer, StrainDetector
from etl.failures import STRAIN_WEIGHTS, Action


def max_in_window(starts: list[float], window: float = 1.0) -> int:
    starts = sorted(starts)
    best, left = 0, 0
    for right, start in enumerate(starts):
        while start - starts[left] >= window:
            left += 1
        best = max(best, right - left + 1)
    return best


def _hammer(budget: HostBudget, count: int, results, label: int) -> None:
    async def go() -> list[float]:
        starts = []
        for _ in range(count):
            await budget.acquire()
            starts.append(time.monotonic())
        return starts

    results.put((label, asyncio.run(go())))


def _run_processes(budget: HostBudget, counts: list[int], method: str) -> dict[int, list[float]]:
    ctx = multiprocessing.get_context(method)
    results = ctx.Queue()
    processes = [ctx.Process(target=_hammer, args=(budget, count, results, label))
                 for label, count in enumerate(counts)]
    for process in processes:
        process.start()
    collected = dict(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(10)
    return collected


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_four_processes_never_exceed_the_host_rate(method: str) -> None:
    budget = HostBudget(max_rps=20, floor_rps=2, recover_after_s=10, ctx=multiprocessing.get_context(method))
    starts = _run_processes(budget, [30, 30, 30, 30], method)
    every = [t for per_process in starts.values() for t in per_process]
    assert len(every) == 120
    assert max_in_window(every) <= 20
    elapsed = max(every) - min(every)
    # 120 starts at 20/s need 119 intervals of ~1/20 s: the budget is used, not wasted.
    assert elapsed == pytest.approx(119 / 20, rel=0.1)


def test_processes_share_fairly_and_an_early_finisher_leaves_its_share() -> None:
    budget = HostBudget(max_rps=20, floor_rps=2, recover_after_s=10, ctx=multiprocessing.get_context("fork"))
    starts = _run_processes(budget, [10, 50], "fork")
    short, long = sorted(starts[0]), sorted(starts[1])
    # While both run they alternate: the long one got about as many starts as the short one.
    overlap = [t for t in long if t <= short[-1]]
    assert 7 <= len(overlap) <= 13
    # After the short one is done the long one runs at the whole host rate.
    after = [t for t in long if t > short[-1]]
    assert (after[-1] - after[0]) / (len(after) - 1) == pytest.approx(1 / 20, rel=0.15)


class VirtualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_throttle_halves_down_to_the_floor_then_recovers_stepwise() -> None:
    clock = VirtualClock()
    budget = HostBudget(max_rps=8, floor_rps=1.5, recover_after_s=0.2, clock=clock)
    change = budget.throttle("HTTP 429")
    assert change is not None and (change.old_rate, change.new_rate) == (8, 4)
    assert budget.throttle("again at once") is None  # one bad moment is one signal
    clock.advance(1.95)
    assert budget.throttle("still within two seconds") is None
    assert budget.rate == 4 and budget.throttle_events == 1
    clock.advance(0.1)
    for _ in range(3):
        budget.throttle("x")
        clock.advance(2.05)
    assert budget.rate == 1.5  # 4 -> 2 -> 1.5 (floor)
    clock.advance(0.1)  # 2.15 s since the last halving attempt
    assert asyncio.run(budget.acquire()) is not None  # quiet for recover_after: steps up
    assert budget.rate == 3.5  # floor + a quarter of the budget


def test_the_rate_steps_up_only_after_a_quiet_period_and_stops_at_the_budget() -> None:
    clock = VirtualClock()
    budget = HostBudget(max_rps=8, floor_rps=1, recover_after_s=10, clock=clock)
    budget.throttle("HTTP 429")
    clock.advance(9.9)
    assert asyncio.run(budget.acquire()) is None and budget.rate == 4  # not quiet long enough
    clock.advance(0.2)
    step = asyncio.run(budget.acquire())
    assert step is not None and (step.old_rate, step.new_rate, step.reason) == (4, 6, "quiet period")
    clock.advance(4.9)
    assert asyncio.run(budget.acquire()) is None  # steps are recover_after / 2 apart
    clock.advance(0.2)
    assert asyncio.run(budget.acquire()).new_rate == 8
    clock.advance(60)
    assert asyncio.run(budget.acquire()) is None and budget.rate == 8  # never above the budget


def test_process_pacer_spaces_starts_and_caps_in_flight() -> None:
    async def go() -> tuple[list[float], int]:
        pacer = ProcessPacer(concurrency=2, pacing_s=0.05)
        starts: list[float] = []
        in_flight = 0
        peak = 0

        async def one() -> None:
            nonlocal in_flight, peak
            async with pacer:
                starts.append(time.monotonic())
                in_flight += 1
                peak = max(peak, in_flight)
                await asyncio.sleep(0.12)
                in_flight -= 1

        await asyncio.gather(*(one() for _ in range(8)))
        return starts, peak

    starts, peak = asyncio.run(go())
    assert peak == 2
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.045


def test_strain_detector_fires_on_a_burst_not_on_scattered_failures() -> None:
    detector = StrainDetector(window=20, threshold=8)
    scattered = [1 if i % 10 == 0 else 0 for i in range(200)]  # 10 % transient failures, spread out
    assert not any(detector.record(strain) for strain in scattered)
    fresh = StrainDetector(window=20, threshold=8)
    assert [fresh.record(1) for _ in range(8)] == [False] * 7 + [True]  # eight transient failures


def test_two_429s_are_a_throttle_signal_and_one_is_not() -> None:
    weight = STRAIN_WEIGHTS[Action.THROTTLED]
    detector = StrainDetector(window=20, threshold=8)
    assert not detector.record(weight)
    assert not any(detector.record(0) for _ in range(19))  # the lone 429 has left the window
    assert not detector.record(weight)
    assert detector.record(weight)
