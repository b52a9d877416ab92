"""Per-user upload rate limit (the `limits` library, moving window, in process memory).

Every stored upload costs disk and becomes a row in the drift windows; one account (or, on a kiosk,
one client address) must not be able to fill either. Over `serve.upload_rate` the answer is 429
with `Retry-After` in whole seconds. The counters live in this process: run one server process per
store, or put a shared limit in front of several.
"""

from __future__ import annotations

import math
import time

from fastapi import HTTPException
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class UploadLimiter:
    def __init__(self, rate: str | None) -> None:
        self.rate = rate
        self.item: RateLimitItem | None = parse(rate) if rate else None
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> None:
        """Count one upload by `key`; 429 with Retry-After when it is over the limit."""
        if self.item is None or self.limiter.hit(self.item, key):
            return
        reset = self.limiter.get_window_stats(self.item, key).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise HTTPException(
            429,
            f"too many uploads: at most {self.rate} per user (serve.upload_rate); try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
