"""Secret header values against a real database and a real target: recorded sealed, sent in
clear, and never sent when the worker's key cannot open them."""

from eventsourcing.cryptography import AESCipher

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.redaction import REDACTED
from domain.request import RequestSpec
from domain.service_call import Status
from harness.target_server import TargetServer
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.support.db_queries import rows
from tests.support.waiting import wait_terminal

HEADERS = {"Authorization": "Bearer s3cret-XYZ", "X-Custom-Token": "tok-123", "X-Trace": "t"}


def _submit(url: str) -> SubmitServiceCall:
    request = RequestSpec("GET", url, dict(HEADERS), secret_headers=("x-custom-token",))
    return SubmitServiceCall("t1", "secret", request, utcnow())


def _states(url: str) -> bytes:
    return b"\n".join(bytes(row[0]) for row in rows(url, "SELECT state FROM duecall_events"))


def test_values_are_recorded_sealed_and_sent_in_clear(
    settings: Settings, clean_database: str
) -> None:
    keyed = settings.model_copy(update={"secret_key": AESCipher.create_key(32)})
    container = Container.build(keyed)
    try:
        with TargetServer() as target:
            call, _ = container.service_calls.submit(_submit(f"{target.url}/ok"))
            container.start_workers()
            assert wait_terminal(container, "t1", call.id, timeout=10).status == Status.SUCCEEDED
            received = target.requests_for("/ok")[0]
        assert received.headers["authorization"] == HEADERS["Authorization"]
        assert received.headers["x-custom-token"] == HEADERS["X-Custom-Token"]
        states = _states(clean_database)
        assert b"s3cret-XYZ" not in states
        assert b"tok-123" not in states
        assert states.count(b"enc:v1:") >= 4  # two values, in Submitted and Execution.Started
        described = container.service_calls.get_call("t1", call.id).describe()
        assert described["request"]["headers"] == {
            "Authorization": REDACTED, "X-Custom-Token": REDACTED, "X-Trace": "t"
        }
    finally:
        container.close()


def test_values_sealed_under_another_key_are_not_sent(
    settings: Settings, clean_database: str
) -> None:
    submitter = Container.build(
        settings.model_copy(update={"secret_key": AESCipher.create_key(32)})
    )
    worker = Container.build(settings.model_copy(update={"secret_key": AESCipher.create_key(32)}))
    try:
        with TargetServer() as target:
            call, _ = submitter.service_calls.submit(_submit(f"{target.url}/ok"))
            worker.start_workers()
            failed = wait_terminal(worker, "t1", call.id, timeout=10)
            assert target.requests == []
        assert (failed.status, failed.last_error_kind) == (Status.FAILED, "rejected")
        execution = worker.service_calls.executions_of(failed)[0]
        assert execution.message is not None
        assert "could not be opened" in execution.message
    finally:
        worker.close()
        submitter.close()
