"""Wake-ups for the projection runners: LISTEN on the events table's channel.

The event recorder NOTIFYs its channel in every insert transaction. One connection per process
listens and wakes every registered runner; if it drops, it reconnects with backoff and wakes
them all (they poll meanwhile anyway).
"""

import threading

import psycopg
import structlog
from psycopg.sql import SQL, Identifier

log = structlog.get_logger(__name__)


class Wakeups:
    def __init__(self, url: str, channel: str, stopped: threading.Event) -> None:
        self._url = url
        self._channel = channel
        self._stopped = stopped
        self._events: list[threading.Event] = []

    def register(self) -> threading.Event:
        event = threading.Event()
        self._events.append(event)
        return event

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._listen, name="projection-wakeups", daemon=True)
        thread.start()
        return thread

    def _listen(self) -> None:
        backoff = 0.1
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(SQL("LISTEN {}").format(Identifier(self._channel)))
                    backoff = 0.1
                    self._wake()
                    while not self._stopped.is_set():
                        if any(True for _ in conn.notifies(timeout=0.5, stop_after=1)):
                            self._wake()
            except psycopg.Error as error:
                log.warning("projection_listener_reconnect", error=str(error), backoff=backoff)
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _wake(self) -> None:
        for event in self._events:
            event.set()
