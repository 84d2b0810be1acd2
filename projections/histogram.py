"""Fixed log-scale latency buckets (√2 apart, from 1 ms), stored as cumulative counts.

Bucket 0 holds [0, 1) ms; bucket i ≥ 1 holds [2^((i-1)/2), 2^(i/2)) ms; the last bucket also
holds everything above (~35 minutes). A percentile is answered as the geometric middle of the
bucket where it falls, so it is within one bucket (≤ 41 %) of the exact value.

Stored form: *cumulative* counts (element i = observations in buckets 0..i), cut after the last
non-empty bucket (every later element would equal the total). Two such arrays add element-wise
(a shorter one repeats its last element), and the bucket of the observation of rank r is the
number of elements below r — ``width_bucket(r - 1, cumulative)``, a binary search in SQL, so
percentiles are read without unpacking the histogram (``projections.statistics_query``).
"""

import math
from collections.abc import Sequence
from itertools import accumulate

BUCKETS = 44
REPRESENTATIVE_MS = [0.5, *(float(2 ** ((b - 0.5) / 2)) for b in range(1, BUCKETS))]


def bucket_of(duration_ms: float) -> int:
    if duration_ms < 1:
        return 0
    return min(BUCKETS - 1, math.floor(2 * math.log2(duration_ms)) + 1)


def representative_ms(bucket: int) -> float:
    return REPRESENTATIVE_MS[bucket]


def cumulative(counts: Sequence[int]) -> list[int]:
    """Per-bucket counts as stored: cumulative, cut after the last non-empty bucket."""
    last = len(counts)
    while last and not counts[last - 1]:  # callers that know the last bucket cut it already
        last -= 1
    return list(accumulate(counts[:last]))
