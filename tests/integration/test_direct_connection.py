"""DUECALL_DIRECT_DATABASE_URL: with DATABASE_URL pointing at a transaction pooler, what needs
a session (the LISTEN connection, session advisory locks, migrations) goes to the direct URL,
the rest to DATABASE_URL. Both URLs here name the same database, told apart by
application_name."""

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.request import RequestSpec
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.support.waiting import wait_until


def _named(url: str, name: str) -> str:
    return make_conninfo(url, application_name=name)


@pytest.fixture
def split(settings: Settings, clean_database: str) -> Iterator[Container]:
    built = Container.build(settings.model_copy(update={
        "database_url": _named(clean_database, "duecall-pooled"),
        "direct_database_url": _named(clean_database, "duecall-direct"),
    }))
    try:
        yield built
    finally:
        built.close()


def _queries_by_name(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, query FROM pg_stat_activity "
            "WHERE application_name IN ('duecall-pooled', 'duecall-direct') "
            "AND datname = current_database()"
        ).fetchall()
    return [(str(name), str(query)) for name, query in rows]


def test_the_listener_uses_the_direct_url_and_the_rest_database_url(
    split: Container, clean_database: str
) -> None:
    request = RequestSpec("POST", "http://127.0.0.1:9/never")
    split.service_calls.submit(SubmitServiceCall("t-direct", "direct", request, utcnow()))
    split.outbox.claim("start", 1)  # a pooled connection at work
    split.outbox.wait("start", 0)  # a claim loop's first wait: the listener starts

    def direct_queries() -> list[str]:
        found = _queries_by_name(clean_database)
        return [query.split(" ")[0] for name, query in found if name == "duecall-direct"]

    # the listener's connection shows "" until its LISTEN has run; then it is the only one
    wait_until(lambda: direct_queries() == ["LISTEN"], timeout=10)
    assert any(name == "duecall-pooled" for name, _ in _queries_by_name(clean_database))
