"""Latency buckets and their stored, cumulative form."""

from itertools import accumulate

import pytest

from projections.histogram import BUCKETS, bucket_of, cumulative, representative_ms


def test_cumulative_counts_stop_after_the_last_non_empty_bucket() -> None:
    assert cumulative([0, 2, 0, 1, 0, 0]) == [0, 2, 2, 3]
    assert cumulative([0, 0, 0]) == []


def test_cut_cumulative_histograms_add_like_the_full_ones() -> None:
    a, b = [1, 0, 3, 0, 0], [0, 2, 0, 0, 4]
    short, long = cumulative(a), cumulative(b)
    padded = [short[min(i, len(short) - 1)] + long[i] for i in range(len(long))]
    assert padded == list(accumulate(x + y for x, y in zip(a, b, strict=True)))


@pytest.mark.parametrize("duration_ms", [0.0, 0.99, 1.0, 1.5, 33.0, 999.9, 10_000.0, 1e9])
def test_a_durations_bucket_is_answered_by_a_value_in_that_bucket(duration_ms: float) -> None:
    bucket = bucket_of(duration_ms)
    assert 0 <= bucket < BUCKETS
    assert bucket_of(representative_ms(bucket)) == bucket
