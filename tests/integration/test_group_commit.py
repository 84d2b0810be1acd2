"""Group commit: concurrent single submits are recorded together, each gets its own answer."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from application.clock import utcnow
from application.commands import SubmitServiceCall
from application.group_commit import GroupCommit
from application.idempotency import IdempotencyKeyReusedError
from domain.request import RequestSpec
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
