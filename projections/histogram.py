"""Fixed log-scale latency buckets (√2 apart, from 1 ms) and percentiles read from them.

Bucket 0 holds [0, 1) ms; bucket i ≥ 1 holds [2^((i-1)/2), 2^(i/2)) ms; the last bucket also
holds everything above (~35 minutes). A percentile is answered as the geometric middle of the
bucket where it falls, so it is within one bucket (≤ 41 %) of the exact value.
"""

import math
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate

BUCKETS = 44


def bucket_of(duration_ms: float) -> int:
    if duration_ms < 1:
        return 0
    return min(BUCKETS - 1, math.floor(2 * math.log2(duration_ms)) + 1)


def representative_ms(bucket: int) -> float:
    if bucket == 0:
        return 0.5
    return float(2 ** ((bucket - 0.5) / 2))


def percentiles(histogram: Sequence[int], *fractions: float) -> list[float | None]:
    """The values below which each ``fraction`` of the observations fall (nearest rank)."""
    cumulative = list(accumulate(histogram))
    total = cumulative[-1] if cumulative else 0
    if total == 0:
        return [None for _ in fractions]
    ranks = (max(1, math.ceil(fraction * total)) for fraction in fractions)
    return [representative_ms(bisect_left(cumulative, rank)) for rank in ranks]
