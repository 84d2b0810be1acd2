"""Per-key request rate limits: a token bucket per API key, in this process.

Each key may make ``rate`` requests a second on average and ``burst`` at once. Several API
processes each keep their own buckets, so the limit is per key and process.
"""

import threading
import time
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float
    burst: int
    tokens: float = field(init=False)
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def wait_for(self, key: str, rate: float, burst: int) -> float:
        """0.0 if ``key`` may make a request now, else how long to wait (seconds)."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None or (bucket.rate, bucket.burst) != (rate, burst):
                bucket = self._buckets[key] = TokenBucket(rate, burst)
            return bucket.take(time.monotonic())
