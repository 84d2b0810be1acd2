"""`duecall watch`'s parts that need no server: reading Server-Sent Events, one line per event."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from typer.testing import CliRunner

from interfaces import cli
from interfaces.cli_watch import SseMessage, event_line, sse_messages


def test_sse_messages_are_read_field_by_field_and_comments_skipped() -> None:
    lines = ["retry: 1000", "id: 7", "", ": heartbeat", "", "id: 8", "event: ServiceCall.Paused",
             'data: {"a": 1}', "data:second", "", "id: 9"]  # the last one is not finished
    assert list(sse_messages(lines)) == [
        SseMessage(id="7"),
        SseMessage(id="8", event="ServiceCall.Paused", data=['{"a": 1}', "second"]),
    ]


def test_an_event_line_says_what_happened() -> None:
    data = {"position": 12, "type": "Execution.Succeeded", "aggregate_type": "Execution",
            "aggregate_id": "e1", "service_call_id": "c1",
            "timestamp": "2026-01-02T03:04:05.678901Z",
            "payload": {"status_code": 200, "duration_ms": 12.5}}
    assert event_line(data).plain == "03:04:05.678  #12  Execution.Succeeded  c1  ← 200 in 12.5 ms"
    circuit = {"position": 13, "type": "Circuit.Opened", "aggregate_type": "Circuit",
               "aggregate_id": "k1", "service_call_id": None, "timestamp": None,
               "payload": {"failures": 5}}
    assert event_line(circuit).plain == "  #13  Circuit.Opened  k1  failures=5"
    odd = {**data, "type": "ServiceCall.Succeeded", "aggregate_type": "ServiceCall",
           "payload": {}}  # a shape this client does not know: no description, no crash
    assert event_line(odd).plain.endswith("ServiceCall.Succeeded  c1  ")


class _ScriptedStream(BaseHTTPRequestHandler):
    """Answers each GET with the next scripted answer, and records what was asked."""

    protocol_version = "HTTP/1.1"
    answers: ClassVar[list[tuple[int, bytes]]] = []
    asked: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        self.asked.append((self.path, self.headers.get("Last-Event-ID")))
        status, body = self.answers.pop(0)
        self.send_response(status)
        kind = "text/event-stream" if status == 200 else "application/problem+json"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # the stream "drops" after its body
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _event(position: int) -> bytes:
    data = {"position": position, "type": "ServiceCall.Paused", "aggregate_type": "ServiceCall",
            "service_call_id": "c1", "payload": {}}
    return f"id: {position}\nevent: ServiceCall.Paused\ndata: {json.dumps(data)}\n\n".encode()


def test_watch_reconnects_after_the_last_id_it_saw_and_says_why_it_stops() -> None:
    problem = json.dumps({"title": "Unauthorized", "status": 401, "detail": "revoked"}).encode()
    _ScriptedStream.answers = [
        (200, b"retry: 1000\nid: 5\n\n: heartbeat\n\n" + _event(6) + _event(7)),
        (200, b"retry: 1000\nid: 7\n\n" + _event(8)),
        (401, problem),
    ]
    _ScriptedStream.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedStream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(cli.app, ["watch", "--json", "--from", "3", "--type", "A,B",
                                              "--url", url, "--api-key", "k"])
    finally:
        server.shutdown()
        server.server_close()
    printed = [json.loads(line)["position"] for line in result.stdout.splitlines()
               if line.startswith("{")]
    assert printed == [6, 7, 8]
    assert [last for _, last in _ScriptedStream.asked] == [None, "7", "8"]
    first, again = _ScriptedStream.asked[0][0], _ScriptedStream.asked[1][0]
    assert "after=3" in first
    assert "type=A%2CB" in first
    assert "after" not in again  # Last-Event-ID says where to resume
    assert result.exit_code == 1
    assert "API key was refused" in result.output
