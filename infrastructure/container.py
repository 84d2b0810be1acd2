"""The composition root: settings → database → applications, outbox, sender, workers.

Built from FastAPI's lifespan and from the CLI alike; nothing connects at import time. One
``Notifications`` listener per container (one LISTEN connection per process) wakes the outbox's
worker loops, the read-model runners and the live event stream's tail.
"""

from dataclasses import dataclass, field
from uuid import uuid4

import uvloop

from application.authentication import Authenticator
from application.dispatch.workers import WorkerOptions, Workers
from application.group_commit import GroupCommit
from application.rate_limit import RateLimiter
from application.schedules import Schedules
from application.service_calls import ServiceCalls
from application.signing import RequestSigner
from application.tenant_defaults import TenantDefaults
from application.tenants import Tenants
from application.tracing import NO_TRACING, Tracer
from application.workflows import Workflows
from domain.circuit import CircuitOptions
from infrastructure.circuit_registry import PostgresCircuitRegistry
from infrastructure.database import (
    DATABASE_UNAVAILABLE,
    eventsourcing_env,
    migrate,
    resolve_database_url,
    schema_lock,
)
from infrastructure.event_feed import PostgresEventFeed
from infrastructure.event_hashes import migrate_event_store
from infrastructure.http_sender import AiohttpSender
from infrastructure.idempotency import PostgresIdempotencyKeys
from infrastructure.notifications import Notifications
from infrastructure.outbox import ConcurrencyLimits, OutboxRecorder, PostgresOutbox
from infrastructure.pool_checks import ping_only_idle_connections
from infrastructure.secret_box import AesSecretBox, secret_key
from infrastructure.settings import Settings
from infrastructure.tenant_registry import PostgresTenantRegistry
from infrastructure.tracing import build_tracer
from infrastructure.worker_registry import PostgresWorkerRegistry
from projections.read_models import ReadModels


@dataclass
class Container:
    settings: Settings
    database_url: str
    direct_database_url: str
    notifications: Notifications
    service_calls: ServiceCalls
    outbox: PostgresOutbox
    circuit_registry: PostgresCircuitRegistry
    worker_registry: PostgresWorkerRegistry
    tenant_defaults: TenantDefaults
    submits: GroupCommit
    secret_box: AesSecretBox
    tenants: Tenants
    schedules: Schedules
    workflows: Workflows
    workers: Workers | None = field(default=None)
    tracer: Tracer = field(default=NO_TRACING)
    read_models: ReadModels = field(init=False)
    authenticator: Authenticator = field(init=False)
    rate_limiter: RateLimiter = field(init=False, default_factory=RateLimiter)

    def __post_init__(self) -> None:
        poll = self.settings.poll_interval_seconds
        self.read_models = ReadModels.of(
            self.database_url, self.service_calls, self.notifications, poll,
            lock_url=self.direct_database_url, linger=self.settings.projection_linger_seconds,
        )
        self.authenticator = Authenticator(
            self.tenants,
            admin_key=self.settings.admin_key,
            default_rate_per_second=self.settings.api_rate_per_second,
            default_burst=self.settings.api_burst,
        )

    @classmethod
    def build(cls, settings: Settings) -> "Container":
        url = resolve_database_url(settings)
        direct = settings.direct_database_url or url  # sessions: LISTEN, session locks, DDL
        box = AesSecretBox(secret_key(settings))
        with schema_lock(direct):  # one process at a time creates or migrates tables
            migrate(direct)
            env = eventsourcing_env(url, settings)
            notifications = Notifications(direct)
            worker_id = uuid4()  # whom this container's claims are leased to
            outbox = PostgresOutbox(
                url,
                notifications,
                ConcurrencyLimits(
                    per_tenant=settings.tenant_max_in_flight, per_host=settings.host_max_in_flight
                ),
                connect_timeout=settings.db_connect_timeout_seconds,
                worker_id=worker_id,
            )
            service_calls = ServiceCalls(
                env,
                secret_box=box,
                idempotency_keys=PostgresIdempotencyKeys(outbox.pool),
                execution_grace_seconds=settings.execution_grace_seconds,
                circuit_options=CircuitOptions(
                    failure_threshold=settings.circuit_failure_threshold,
                    open_seconds=settings.circuit_open_seconds,
                    probe_wait_seconds=settings.circuit_probe_wait_seconds,
                ),
                max_deliveries=settings.max_deliveries,
            )
            recorder = service_calls.recorder
            assert isinstance(recorder, OutboxRecorder)
            ping_only_idle_connections(recorder.datastore.pool)
            migrate_event_store(direct)  # the events table exists now: chain its events
        workflows = Workflows(service_calls, max_body_bytes=settings.max_request_body_bytes)
        return cls(
            settings=settings,
            database_url=url,
            direct_database_url=direct,
            notifications=notifications,
            service_calls=service_calls,
            outbox=outbox,
            circuit_registry=PostgresCircuitRegistry(outbox.pool),
            worker_registry=PostgresWorkerRegistry(outbox.pool, worker_id),
            tenant_defaults=TenantDefaults(service_calls),
            submits=GroupCommit(service_calls.submit_many, unavailable=DATABASE_UNAVAILABLE),
            secret_box=box,
            tenants=Tenants(service_calls, box, PostgresTenantRegistry(outbox.pool)),
            schedules=Schedules(
                service_calls, settings.schedule_lookahead_seconds, workflows=workflows
            ),
            workflows=workflows,
            tracer=build_tracer(settings.tracing),
        )

    def start_workers(self) -> Workers:
        options = WorkerOptions(
            batch_size=self.settings.batch_size,
            max_in_flight=self.settings.max_in_flight,
            poll_interval=self.settings.poll_interval_seconds,
            timer_lookahead=self.settings.timer_lookahead_seconds,
            timer_prestart=self.settings.timer_prestart_seconds,
            record_running_after=self.settings.record_running_after_seconds,
            outcome_linger=self.settings.outcome_linger_seconds,
            shutdown_timeout=self.settings.shutdown_timeout_seconds,
            heartbeat_interval=self.settings.worker_heartbeat_seconds,
            dead_after=self.settings.worker_dead_after_seconds,
        )
        self.workers = Workers(
            self.service_calls,
            self.outbox,
            lambda: AiohttpSender(
                snippet_bytes=self.settings.response_snippet_bytes,
                max_connections=self.settings.max_in_flight,
                allowlist=self.settings.allowlist,
            ),
            options,
            signer=RequestSigner(self.tenants),
            unavailable=DATABASE_UNAVAILABLE,
            tracer=self.tracer,
            schedules=self.schedules,
            registry=self.worker_registry,
            workflows=self.workflows,
            loop_factory=uvloop.new_event_loop,
        )
        self.workers.start()
        return self.workers

    def event_feed(self) -> PostgresEventFeed:
        """The live event stream's view of the log, woken through this process's listener."""
        return PostgresEventFeed.of_app(self.service_calls, self.notifications)

    def start_projections(self) -> ReadModels:
        self.read_models.start()
        return self.read_models

    def close(self) -> None:
        if self.workers:
            self.workers.stop()
        self.read_models.close()
        self.outbox.close()
        self.notifications.close()
        self.service_calls.close()
        self.tracer.flush()
