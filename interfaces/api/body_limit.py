"""A cap on the size of an API request's body: 413 problem+json, before anything is parsed.

Checked on ``Content-Length`` when the client sends one, and on the bytes as they arrive when
it streams (chunked), so a huge batch is refused without being read into memory.

Not Starlette's ``RequestBodyLimitMiddleware`` (``FastAPI(max_body_size=...)``): for a declared
``Content-Length`` over the limit it swaps whatever the app answers for its own text/plain
"Content Too Large" inside its ``send`` wrapper, past every exception handler, so that 413 cannot
be our problem+json naming ``body`` (only a streamed body's overflow reaches the handlers).
"""

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interfaces.api.problems import MEDIA_TYPE


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            await self._refuse(send)
            return
        received = 0
        refused = False

        async def counting() -> Message:
            """The body as it arrives; past the limit, answer 413 and tell the app the client
            went away (so it stops reading, and whatever it answers is dropped)."""
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_bytes:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def sending(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self._app(scope, counting, sending)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send: Send) -> None:
        detail = f"the request body is larger than {self._max_bytes} bytes"
        body = json.dumps(
            {"type": "about:blank", "title": "Request too large", "status": 413,
             "detail": detail, "errors": [{"field": "body", "message": detail}]}
        ).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", MEDIA_TYPE.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
