"""An asyncio event loop whose clock jumps instead of waiting: seconds of pacing run in milliseconds."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """`asyncio.sleep` and `loop.time()` in virtual seconds. For code that does no real I/O."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        real_select = self._selector.select

        def select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is None:
                raise RuntimeError("virtual time: every task is waiting on something that will never happen")
            self._now += timeout
            return real_select(0)

        self._selector.select = select  # type: ignore[method-assign]

    def time(self) -> float:
        return self._now


def run_virtual(main: Coroutine[Any, Any, Any], loop: VirtualTimeLoop) -> Any:
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()
