"""What this process counts as it works, for Prometheus (``/metrics``; see README).

The worker's loops count attempts and measure how late calls start, and schedules' fires and
skips; the API measures its requests. Figures that every process shares (outbox depth,
projector lag, circuits) are read from the database when scraped instead
(infrastructure/metrics_collector.py).
"""

from prometheus_client import Counter, Gauge, Histogram

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

ATTEMPTS_STARTED = Counter("duecall_attempts_started", "HTTP attempts started by this process.")
ATTEMPTS_FINISHED = Counter(
    "duecall_attempts_finished",
    "HTTP attempts finished by this process, by outcome and error kind.",
    ["outcome", "error_kind"],
)
ATTEMPT_SECONDS = Histogram(
    "duecall_attempt_duration_seconds", "How long HTTP attempts took.", buckets=_SECONDS
)
ATTEMPTS_IN_FLIGHT = Gauge("duecall_attempts_in_flight", "HTTP attempts in flight here now.")
START_LATENESS_SECONDS = Histogram(
    "duecall_start_lateness_seconds",
    "When an attempt the timer started was sent minus when it was due.",
    buckets=_SECONDS,
)
API_REQUEST_SECONDS = Histogram(
    "duecall_api_request_duration_seconds",
    "API requests by route and status.",
    ["method", "route", "status"],
    buckets=_SECONDS,
)
SCHEDULE_FIRES = Counter(
    "duecall_schedule_fires",
    "Calls fired by schedules in this process: scheduled, catch_up (a missed time made), "
    "backfill or trigger.",
    ["kind"],
)
SCHEDULE_SKIPS = Counter(
    "duecall_schedule_skips",
    "Nominal times schedules did not fire, by reason (overlap, missed, paused, dst_gap).",
    ["reason"],
)
SCHEDULE_FIRE_LATENESS_SECONDS = Histogram(
    "duecall_schedule_fire_lateness_seconds",
    "When a schedule's fire was sent minus when it was due (its nominal time plus jitter).",
    buckets=_SECONDS,
)
