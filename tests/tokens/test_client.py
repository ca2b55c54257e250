"""The Web API transport: kept-alive HTTP/1.1 connections read without http.client, checked
against a raw socket server that answers exactly the bytes each test scripts."""

from __future__ import annotations

import json
import socket
import threading
from typing import Iterator

import pytest
from slack_sdk.errors import SlackApiError

from bolt_app.tokens.client import ResponseHeaders, TokenRefreshingWebClient, build_web_client


def ok_json(payload: dict, *, extra: str = "") -> bytes:
    body = json.dumps(payload).encode()
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def chunked_json(payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    half = len(body) // 2
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:half], body[half:]))
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


CLOSE = object()  # scripted: close the connection without answering


class ScriptedServer:
    """Answers each request with the next scripted response; counts connections and requests."""

    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.connections = 0
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/api/"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        with conn:
            while self.script:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + reader.read(length))
                answer = self.script.pop(0)
                if answer is CLOSE:
                    return
                conn.sendall(answer)
                if b"Connection: close" in answer:
                    return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[ScriptedServer] = []

    def start(*script) -> ScriptedServer:  # type: ignore[no-untyped-def]
        servers.append(ScriptedServer(list(script)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def client_for(server: ScriptedServer) -> TokenRefreshingWebClient:
    return TokenRefreshingWebClient.like(build_web_client(server.url), token="xoxb-test", team_id="T1")


def run_in_thread(fn):  # type: ignore[no-untyped-def]
    """Connections are kept per thread: each test starts from a thread with none."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def test_calls_reuse_one_connection_and_send_a_well_formed_request(serve) -> None:
    server = serve(ok_json({"ok": True, "n": 1}), chunked_json({"ok": True, "n": 2}), ok_json({"ok": True, "n": 3}))
    client = client_for(server)
    results = run_in_thread(lambda: [client.chat_postMessage(channel="C1", text=f"hi {i}")["n"] for i in range(3)])
    assert results == [1, 2, 3]  # Content-Length and chunked bodies both read whole
    assert server.connections == 1
    first = server.requests[0].decode()
    assert first.startswith("POST /api/chat.postMessage HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in first
    assert "Authorization: Bearer xoxb-test" in first
    assert first.endswith('{"channel": "C1", "text": "hi 0", "team_id": "T1"}')


def test_connection_close_and_a_dropped_idle_connection_are_handled(serve) -> None:
    server = serve(ok_json({"ok": True, "n": 1}, extra="Connection: close\r\n"),
                   ok_json({"ok": True, "n": 2}), CLOSE, ok_json({"ok": True, "n": 3}))
    client = client_for(server)
    results = run_in_thread(lambda: [client.api_test()["n"] for _ in range(3)])
    # 1: server said close → new connection for 2; the kept-alive one is dropped unanswered
    # before 3 → one silent retry on a fresh connection.
    assert results == [1, 2, 3]
    assert server.connections == 3


def test_rate_limit_retry_after_is_honoured_through_slack_sdk(serve) -> None:
    limited = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n"
    server = serve(limited, ok_json({"ok": True, "n": 7}))
    assert run_in_thread(lambda: client_for(server).api_test()["n"]) == 7
    assert len(server.requests) == 2


def test_slack_errors_and_server_errors_surface_as_slack_sdk_does(serve) -> None:
    server = serve(ok_json({"ok": False, "error": "channel_not_found"}),
                   *[b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n"
                     b'{"ok":false,"error":"down"}'] * 3)
    client = client_for(server)
    with pytest.raises(SlackApiError) as not_found:
        run_in_thread(lambda: client.chat_postMessage(channel="C404", text="x"))
    assert not_found.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as unavailable:
        run_in_thread(lambda: client.api_test())
    assert unavailable.value.response.status_code == 503
    assert len(server.requests) == 4  # 503 retried twice by the server-error handler


def test_header_values_with_line_breaks_are_refused(serve) -> None:
    server = serve(ok_json({"ok": True}))
    client = client_for(server)
    client.headers = {"X-Injected": "a\r\nEvil: 1"}
    with pytest.raises(ValueError):
        run_in_thread(lambda: client.api_test())
    assert server.requests == []


def test_response_headers_are_case_insensitive_and_keep_their_names() -> None:
    headers = ResponseHeaders([("Content-Type", 'application/json; charset="UTF-8"'), ("Retry-After", "3"),
                               ("X-Many", "a"), ("x-many", "b")])
    assert headers.get("retry-after") == "3" and headers.get("RETRY-AFTER") == "3"
    assert dict(headers)["Retry-After"] == "3"
    assert headers.get("x-MANY") == "a, b"
    assert headers.get_content_type() == "application/json"
    assert headers.get_content_charset() == "utf-8"
    assert headers.get("missing", "d") == "d"
