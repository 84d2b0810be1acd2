"""Running the API under uvicorn, ending live event streams as soon as shutdown starts.

uvicorn waits for every open response to finish before it runs the app's shutdown (lifespan),
and a live event stream never finishes by itself: on SIGTERM or Ctrl-C the server would wait
for every dashboard and `duecall watch` to go away. Its exit handler here first ends the
streams (their clients reconnect, elsewhere or once the server is back, with Last-Event-ID).
"""

from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from application.event_stream import EventHub


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        hub: EventHub | None = getattr(self._app.state, "event_hub", None)
        if hub is not None:
            hub.shutting_down()
        super().handle_exit(sig, frame)


def run(app: FastAPI, **options: Any) -> None:
    """``uvicorn.run(app, **options)``, with live streams ended when shutdown starts."""
    _Server(uvicorn.Config(app, **options), app).run()
