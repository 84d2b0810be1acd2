"""Fixed log-scale latency buckets (√2 apart, from 1 ms) and percentiles read from them.

Bucket 0 holds [0, 1) ms; bucket i ≥ 1 holds [2^((i-1)/2), 2^(i/2)) ms; the last bucket also
holds everything above (~35 minutes). A percentile is answered as the geometric middle of the
bucket where it falls, so it is within one bucket (≤ 41 %) of the exact value.
"""

import math
from collections.abc import Sequence

BUCKETS = 44


def bucket_of(duration_ms: float) -> int:
    if duration_ms < 1:
        return 0
    return min(BUCKETS - 1, math.floor(2 * math.log2(duration_ms)) + 1)


def representative_ms(bucket: int) -> float:
    if bucket == 0:
        return 0.5
    return float(2 ** ((bucket - 0.5) / 2))


def percentile(histogram: Sequence[int], fraction: float) -> float | None:
    """The value below which ``fraction`` of the observations fall (nearest rank)."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for bucket, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return representative_ms(bucket)
    return representative_ms(len(histogram) - 1)  # pragma: no cover (unreachable)
