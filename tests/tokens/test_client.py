"""The Web API clients (slack_sdk's own transport with the app's retry handlers), checked
against a raw socket server that answers exactly the bytes each test scripts."""

from __future__ import annotations

import json
import socket
import threading
from typing import Iterator

import pytest
from slack_sdk.errors import SlackApiError

from slack_sdk import WebClient

from bolt_app.tokens.client import build_web_client


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


def client_for(server: ScriptedServer) -> WebClient:
    return build_web_client(server.url, token="xoxb-test")


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
