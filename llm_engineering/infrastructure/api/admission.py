"""Admission control sized to measured capacity, so that admitted requests finish inside their budget.

A fixed in-flight limit is either too low (idle hardware) or too high (every request queues inside the LLM
server until all of them time out: 0 answers). Here the limit adapts to what the machine actually finishes,
additive-increase / multiplicative-decrease on the latency of completed requests (the way TCP and Netflix's
concurrency limiters do it):

- a request that completes faster than `target_s` (a fraction of the request budget) while the pool was full
  raises the limit by one, up to `max_limit`;
- one that takes longer than `target_s` lowers it to 3/4 (at least 1);
- a request that finds the pool full waits at most `queue_wait_s` for a slot, then gets 503 with a Retry-After
  computed from the measured service time, so clients that honour it come back when there is room.

`busy` tells the service to degrade (skip query expansion and the LLM self-query, shorter answers) once half the
slots are taken: more answers per minute for everyone instead of slow answers for a few.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field


@dataclass
class AdmissionStats:
    admitted: int = 0
    rejected: int = 0
    completed: int = 0
    failed: int = 0
    degraded: int = 0


@dataclass
class AdmissionController:
    name: str
    max_limit: int
    target_s: float
    initial_limit: int = 2
    queue_wait_s: float = 2.0
    min_limit: int = 1
    smoothing: float = 0.3
    limit: float = field(init=False)
    active: int = field(default=0, init=False)
    ewma_s: float | None = field(default=None, init=False)
    stats: AdmissionStats = field(default_factory=AdmissionStats, init=False)
    _freed: asyncio.Condition | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.max_limit = max(self.min_limit, self.max_limit)
        self.limit = float(min(max(self.initial_limit, self.min_limit), self.max_limit))

    @property
    def current_limit(self) -> int:
        return max(self.min_limit, int(self.limit))

    @property
    def busy(self) -> bool:
        """Half the slots or more taken (a single-slot pool is never 'busy': there is nothing to share)."""
        return self.current_limit > 1 and self.active >= math.ceil(self.current_limit / 2)

    def _admit(self) -> bool:
        """Take a slot; True when the request joins a busy pool (the others already hold half the slots)."""
        joins_busy = self.busy
        self.active += 1
        self.stats.admitted += 1
        if joins_busy:
            self.stats.degraded += 1
        return joins_busy

    def retry_after_s(self) -> int:
        """When a slot is likely free again: the measured service time shared by the slots (1..30 s)."""
        service = self.ewma_s if self.ewma_s is not None else self.target_s / 4
        return int(min(30, max(1, math.ceil(service / self.current_limit))))

    def _condition(self) -> asyncio.Condition:
        if self._freed is None:  # created lazily: it binds to the running event loop
            self._freed = asyncio.Condition()
        return self._freed

    async def acquire(self) -> bool | None:
        """Take a slot, waiting at most `queue_wait_s`. None: refuse the request (503). Else whether to answer
        in busy mode (degraded): decided at admission, from the requests already in flight."""
        if self.active < self.current_limit:
            return self._admit()
        condition = self._condition()
        deadline = time.monotonic() + self.queue_wait_s
        async with condition:
            while self.active >= self.current_limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stats.rejected += 1
                    return None
                try:
                    await asyncio.wait_for(condition.wait(), remaining)
                except TimeoutError:
                    continue
            return self._admit()

    async def release(self, elapsed_s: float | None, ok: bool) -> None:
        """Free the slot; a successful request's latency adapts the limit."""
        was_full = self.active >= self.current_limit
        self.active = max(0, self.active - 1)
        if ok and elapsed_s is not None:
            self.stats.completed += 1
            self.ewma_s = (
                elapsed_s if self.ewma_s is None else (1 - self.smoothing) * self.ewma_s + self.smoothing * elapsed_s
            )
            if elapsed_s > self.target_s:
                self.limit = max(float(self.min_limit), self.limit * 0.75)
            elif was_full and elapsed_s < self.target_s / 2:
                self.limit = min(float(self.max_limit), self.limit + 1)
        elif not ok:
            self.stats.failed += 1
        condition = self._condition()
        async with condition:
            condition.notify()

    def snapshot(self) -> dict[str, object]:
        return {
            "active": self.active,
            "limit": self.current_limit,
            "max_limit": self.max_limit,
            "busy": self.busy,
            "service_time_s": round(self.ewma_s, 2) if self.ewma_s is not None else None,
            **self.stats.__dict__,
        }
