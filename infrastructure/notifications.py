"""One LISTEN connection per process: PostgreSQL NOTIFY wake-ups for every consumer in it.

Consumers (the outbox's worker loops, the read-model runners, the live event stream's tail)
subscribe a ``Wake`` callback to a channel. One thread holds one autocommit connection,
LISTENs on every channel subscribed to, and calls each subscriber of a channel with the
payload of each notify on it. A callback runs on the listener's thread, so it only sets a
flag: a ``threading.Event``, or ``loop.call_soon_threadsafe`` for an event loop.

``None`` instead of a payload means "anything may have happened": a subscriber gets it once
its channel is listened to (notifies sent before were not heard), and every subscriber gets
it after a reconnect. The connection is supervised: when it breaks it is opened again with
backoff; the consumers poll meanwhile.
"""

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import structlog
from psycopg.sql import SQL, Identifier

from application.supervision import supervise

log = structlog.get_logger(__name__)

Wake = Callable[[str | None], None]
_LISTEN_WAIT = 0.5  # seconds one wait for notifies lasts (how soon a new channel is listened to)


class Notifications:
    def __init__(self, url: str) -> None:
        self._url = url
        self._subscribers: dict[str, list[Wake]] = {}
        self._listening: set[str] = set()  # channels LISTENed to on the current connection
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, channel: str, wake: Wake) -> Callable[[], None]:
        """Call ``wake`` with each notify's payload on ``channel`` (``None``: anything may
        have been missed); returns the function that unsubscribes. Starts the listener."""
        with self._lock:
            self._subscribers.setdefault(channel, []).append(wake)
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(
                    target=supervise, args=(self._listen_once, self._stopped, "notifications"),
                    kwargs={"on_error": self._disconnect}, name="notifications", daemon=True,
                )
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                wakes = self._subscribers.get(channel, [])
                if wake in wakes:
                    wakes.remove(wake)
        return unsubscribe

    @property
    def backend_pid(self) -> int | None:
        """The server process of the LISTEN connection (None while not connected)."""
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    def close(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * _LISTEN_WAIT + 1)
        self._disconnect(None)

    def _listen_once(self) -> None:
        """One step: connect if need be, LISTEN on new channels, dispatch what arrives."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, autocommit=True)
            self._listening = set()
        with self._lock:
            new = [channel for channel in self._subscribers if channel not in self._listening]
        for channel in new:
            self._conn.execute(SQL("LISTEN {}").format(Identifier(channel)))
            self._listening.add(channel)
            self._dispatch(channel, None)  # notifies before LISTEN were not heard
        for notify in self._conn.notifies(timeout=_LISTEN_WAIT):
            self._dispatch(notify.channel, notify.payload)

    def _dispatch(self, channel: str, payload: str | None) -> None:
        with self._lock:
            wakes = list(self._subscribers.get(channel, ()))
        for wake in wakes:
            try:
                wake(payload)
            except Exception:  # one subscriber's fault must not starve the others
                log.exception("notification_subscriber_failed", channel=channel)

    def _disconnect(self, _error: Exception | None) -> None:
        """Drop the connection: the next step reconnects and wakes every subscriber."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
