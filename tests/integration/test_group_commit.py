"""Group commit: concurrent single submits are recorded together, each gets its own answer."""

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from uuid import uuid4

import pytest

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.group_commit import GroupCommit
from application.idempotency import IdempotencyKeyReusedError
from application.service_calls import SubmittedCalls
from domain.request import RequestSpec
from domain.service_call import ServiceCall
from infrastructure.container import Container


def _command(key: str | None = None, body_hash: str = "h") -> SubmitServiceCall:
    request = RequestSpec("GET", "http://x.test/")
    return SubmitServiceCall("group", "g", request, utcnow() + timedelta(hours=1),
                             idempotency_key=key, request_hash=body_hash)


def test_concurrent_submits_share_transactions_and_all_are_recorded(
    container: Container,
) -> None:
    batches: list[int] = []
    lock = threading.Lock()

    def counting(commands):  # type: ignore[no-untyped-def]
        with lock:
            batches.append(len(commands))
        return container.service_calls.submit_many(commands)

    group = GroupCommit(counting)
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: group.submit(_command()), range(300)))
    ids = {result[0][0].id for result in results}
    assert len(ids) == 300
    assert all(result[0][1] for result in results)
    assert sum(batches) == 300
    assert len(batches) < 300  # some submits shared a transaction
    for call_id in list(ids)[:5]:
        assert container.service_calls.get_call("group", call_id).attempt == 1


def test_one_bad_submit_fails_alone(container: Container) -> None:
    group = GroupCommit(container.service_calls.submit_many)
    group.submit(_command(key="taken", body_hash="first"))
    with ThreadPoolExecutor(8) as pool:
        good = [pool.submit(group.submit, _command()) for _ in range(7)]
        bad = pool.submit(group.submit, _command(key="taken", body_hash="other"))
        assert all(f.result()[0][1] for f in good)
        with pytest.raises(IdempotencyKeyReusedError):
            bad.result()


class Recorded:
    """A fake ``submit_many``: which thread recorded each batch, and how large it was; fails
    with ``error`` while that is set."""

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.sizes: list[int] = []
        self.error: Exception | None = None

    def __call__(self, commands: Sequence[SubmitServiceCall]) -> SubmittedCalls:
        self.threads.append(threading.get_ident())
        self.sizes.append(len(commands))
        if self.error is not None:
            raise self.error
        return SubmittedCalls([(ServiceCall.__new__(ServiceCall), True) for _ in commands], 7)


class Unavailable(Exception):
    pass


def test_a_lone_async_submit_is_recorded_at_once_on_the_loop_thread() -> None:
    recorded = Recorded()
    group = GroupCommit(recorded, unavailable=(Unavailable,))

    async def one() -> SubmittedCalls:
        return await group.submit_async(_command())

    submitted = asyncio.run(one())
    assert submitted.position == 7
    assert submitted[0][1] is True
    assert recorded.threads == [threading.get_ident()]  # asyncio.run's loop runs here


def test_async_submits_that_arrive_together_go_to_the_writer_and_share_transactions(
    container: Container,
) -> None:
    recorded = Recorded()

    def counting(commands: Sequence[SubmitServiceCall]) -> SubmittedCalls:
        recorded(commands)
        return container.service_calls.submit_many(commands)

    group = GroupCommit(counting)

    async def together() -> list[SubmittedCalls]:
        return await asyncio.gather(*(group.submit_async(_command()) for _ in range(50)))

    results = asyncio.run(together())
    assert len({result[0][0].id for result in results}) == 50
    assert sum(recorded.sizes) == 50
    assert len(recorded.sizes) < 50  # some shared a transaction
    assert recorded.threads.count(threading.get_ident()) <= 1  # the writer recorded them


def test_after_the_database_was_away_lone_submits_go_to_the_writer_until_one_is_quick() -> None:
    recorded = Recorded()
    group = GroupCommit(recorded, unavailable=(Unavailable,))
    here = threading.get_ident()

    async def lone() -> SubmittedCalls:
        return await group.submit_async(_command())

    recorded.error = Unavailable("the database is away")
    with pytest.raises(Unavailable):
        asyncio.run(lone())  # at once, on the loop: the last transaction was quick
    with pytest.raises(Unavailable):
        asyncio.run(lone())  # not quick any more: the writer tries it
    recorded.error = None
    asyncio.run(lone())  # the writer again, and it was quick
    asyncio.run(lone())  # so this one is recorded at once
    assert [thread == here for thread in recorded.threads] == [True, False, False, True]


def test_a_client_error_does_not_send_lone_submits_to_the_writer() -> None:
    recorded = Recorded()
    group = GroupCommit(recorded, unavailable=(Unavailable,))
    recorded.error = IdempotencyKeyReusedError("k", uuid4())

    async def lone() -> SubmittedCalls:
        return await group.submit_async(_command(key="k"))

    with pytest.raises(IdempotencyKeyReusedError):
        asyncio.run(lone())
    recorded.error = None
    asyncio.run(lone())
    assert recorded.threads == [threading.get_ident()] * 2
