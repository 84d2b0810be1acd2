"""The log as the read models read it (rows as tuples, not psycopg's dict rows) is the log
the library reads: the same notifications, in the same order, from any position."""

from eventsourcing.postgres import PostgresApplicationRecorder

from application.clock import utcnow
from application.commands import SubmitServiceCall
from domain.request import RequestSpec
from infrastructure.container import Container


def test_the_read_models_read_of_the_log_is_the_librarys(container: Container) -> None:
    app = container.service_calls
    for i in range(5):
        call, _ = app.submit(
            SubmitServiceCall("t-log", f"log-{i}", RequestSpec("GET", "http://127.0.0.1:9/"),
                              utcnow())
        )
        app.cancel("t-log", call.id, "to have events of two kinds")
    recorder = app.recorder
    library = PostgresApplicationRecorder.select_notifications

    for start, limit in ((1, 100), (4, 3), (10_000, 10)):
        ours = recorder.select_notifications(start=start, limit=limit)
        theirs = library(recorder, start=start, limit=limit)  # type: ignore[arg-type]
        assert ours == theirs
        assert all(type(n.state) is bytes for n in ours)
    assert len(recorder.select_notifications(start=1, limit=100)) >= 10
